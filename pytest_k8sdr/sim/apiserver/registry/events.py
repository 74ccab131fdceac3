"""events.k8s.io/v1 Events: the core Events' storage served in the newer form.

As upstream (pkg/apis/events/v1/conversion.go), one storage holds both: `regarding` is
core's `involvedObject`, `note` its `message`, `reportingController` its
`reportingComponent`, and core's `source`, `firstTimestamp`, `lastTimestamp` and `count`
are the `deprecated*` fields.
"""

from __future__ import annotations

from pytest_k8sdr.sim.apimachinery.types import JSON, ResourceType
from pytest_k8sdr.sim.apiserver.registry.strategy import Version

__all__ = ["VERSION"]

# events.k8s.io name -> core name; the other fields (reason, type, action, eventTime, series,
# related, reportingInstance, metadata) are the same in both.
_RENAMED = {
    "regarding": "involvedObject",
    "note": "message",
    "reportingController": "reportingComponent",
    "deprecatedSource": "source",
    "deprecatedFirstTimestamp": "firstTimestamp",
    "deprecatedLastTimestamp": "lastTimestamp",
    "deprecatedCount": "count",
}
_TO_CORE = {v: k for k, v in _RENAMED.items()}


def _rename(obj: JSON, names: dict[str, str], api_version: str) -> JSON:
    out = {names.get(k, k): v for k, v in obj.items()}
    out["apiVersion"] = api_version
    return out


def to_events_v1(obj: JSON) -> JSON:
    """A core Event in its events.k8s.io/v1 form."""
    return _rename(obj, _TO_CORE, "events.k8s.io/v1")


def to_core(obj: JSON) -> JSON:
    """An events.k8s.io/v1 Event in the stored core form."""
    return _rename(obj, _RENAMED, "v1")


VERSION = Version(
    ResourceType("events.k8s.io", "v1", "events", "Event", True, ("ev",)),
    to_events_v1,
    to_core,
)
