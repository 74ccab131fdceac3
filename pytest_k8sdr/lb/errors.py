"""Errors raised by the load-balancer drivers; all are `ToolError`s (our action failed)."""

from __future__ import annotations

from pytest_k8sdr.errors import ConfigError, FaultError, ToolError


class LBError(ToolError):
    """A load balancer could not be read, changed or reached."""


class LBConfigError(LBError, ConfigError):
    """The load balancer, as described by the caller, does not exist or does not fit.

    Raised before anything is changed: no such upstream or backend, a node whose address is in
    none of its servers, a node name that cannot be mapped to an address.
    """


class UpstreamNotFound(LBConfigError):
    """The named nginx `upstream` block or HAProxy backend is not there."""


class NodeNotInLB(LBConfigError):
    """The node's address is in none of the servers of the upstream or backend."""


class LBToolMissing(LBError):
    """A program the driver runs (nginx, socat, docker, ...) is not installed where it runs."""


class LBConfigInvalid(LBError, FaultError):
    """The changed configuration did not validate; the original was left untouched."""


class LBCommandFailed(LBError):
    """A command run against the load balancer failed (reload, runtime API, file write)."""
