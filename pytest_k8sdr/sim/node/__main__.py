"""`python -m pytest_k8sdr.sim.node`: run one node agent (or a hollow group)."""

from __future__ import annotations

from pytest_k8sdr.sim.node.agent import main

if __name__ == "__main__":
    main()
