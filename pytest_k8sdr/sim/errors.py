"""The simulator's one exception root.

Everything the simulator raises on purpose is a `SimError`: `SimLaunchError` (a cluster could
not be started, found or stopped), `ApiError` (an API answer with a Status body), the node
agent's and the client's errors. A caller outside the simulator catches `SimError` once.
"""

from __future__ import annotations

__all__ = ["SimError", "SimLaunchError"]


class SimError(Exception):
    """Something the simulated cluster could not do."""


class SimLaunchError(SimError, RuntimeError):
    """The simulated cluster could not be started, found or stopped."""
