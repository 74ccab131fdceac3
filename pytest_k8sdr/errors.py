"""One exception root for the plugin.

Two branches that a reader of a test report must never confuse:

- `ToolError`: *our* action failed (a fault could not be injected or undone, bad settings,
  the API could not be reached). pytest reports it as an error.
- `ClusterCheckFailed`: *the system under test* failed (a check or an SLO). It is an
  `AssertionError`, so pytest reports it as a test failure.
"""

from __future__ import annotations


class K8sdrError(Exception):
    """Root of every exception raised by pytest-k8sdr."""


class ToolError(K8sdrError):
    """An action of the tool itself failed; the cluster's behaviour is not in question."""


class ConfigError(ToolError):
    """A setting, inventory or kubeconfig is invalid; raised before anything is touched."""


class FaultError(ToolError):
    """A fault could not be injected, or an undo could not be carried out."""


class UndoError(FaultError):
    """One or more undo actions failed; `failures` lists (description, exception)."""

    def __init__(self, message: str, failures: list[tuple[str, BaseException]]) -> None:
        super().__init__(message)
        self.failures = failures


class ClusterCheckFailed(K8sdrError, AssertionError):
    """The cluster did not behave as the check or runbook phase requires."""


class SLOExceeded(ClusterCheckFailed):
    """A runbook phase took longer than its SLO."""

    def __init__(self, phase: str, slo: float, took: float, detail: str = "") -> None:
        message = f"phase {phase!r} exceeded its SLO: took {took:.2f}s, SLO {slo:.2f}s"
        if detail:
            message = f"{message}\n{detail}"
        super().__init__(message)
        self.phase = phase
        self.slo = slo
        self.took = took


class LockLost(ToolError):
    """The game-day lock was taken from a running session: it stops disrupting (a stop condition).

    Raised in the test that was running and by every disruption attempted afterwards.
    """


class RecoverRefused(ConfigError):
    """`k8sdr recover` will not undo the entries of a run that is still alive (see `--force`)."""
