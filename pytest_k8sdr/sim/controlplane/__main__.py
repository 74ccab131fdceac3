"""`python -m pytest_k8sdr.sim.controlplane`: run the control-plane process."""

from __future__ import annotations

import sys

from pytest_k8sdr.sim.controlplane.process import main

if __name__ == "__main__":
    sys.exit(main())
