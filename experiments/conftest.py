"""The simulated cluster these experiments run on: a small cloud cluster over three zones.

As a cloud provider labels them (`topology.kubernetes.io/zone`): zone-a holds the control
plane and three workers, zone-b two workers, zone-c one. Losing zone-b is a zone outage
(test_zone_outage.py); losing zone-a's three workers is most of a small zone at once, the
Partial Disruption of test_majority_loss.py. Only the simulator reads this: on kind and on
staging the cluster is what it is, and an experiment whose shape is not there skips, saying
what it needs.
"""

from __future__ import annotations

from typing import Any

import pytest

SIM_OPTIONS: dict[str, Any] = {
    "workers": 6,
    # The control plane first, then each worker.
    "zones": ["zone-a", "zone-a", "zone-a", "zone-a", "zone-b", "zone-b", "zone-c"],
}


@pytest.fixture(scope="session")
def k8sdr_sim_options() -> dict[str, Any]:
    """Six workers over three zones (see the module's docstring)."""
    return dict(SIM_OPTIONS)
