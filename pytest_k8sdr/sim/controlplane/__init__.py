"""The simulated control plane: its store (`store.Store`) and its process (`process`).

Run it as `python -m pytest_k8sdr.sim.controlplane` (see `process`).
"""
