"""Events the controllers record (client-go's tools/record with its EventCorrelator)."""

from __future__ import annotations

import contextlib
import logging
import secrets

from pytest_k8sdr.sim.apimachinery.clock import now_rfc3339
from pytest_k8sdr.sim.apimachinery.errors import ApiError
from pytest_k8sdr.sim.apimachinery.meta import meta
from pytest_k8sdr.sim.apimachinery.types import JSON
from pytest_k8sdr.sim.apiserver.registry.store import Store

__all__ = ["EventRecorder"]

log = logging.getLogger("pytest_k8sdr.sim.controllers")


class EventRecorder:
    """Writes core/v1 Events, aggregating repeats as client-go's EventCorrelator does."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._seen: dict[tuple[str, ...], tuple[str, str]] = {}

    def record(
        self,
        obj: JSON,
        kind: str,
        etype: str,
        reason: str,
        message: str,
        component: str,
        *,
        api_version: str = "v1",
        namespace: str | None = None,
    ) -> None:
        """Record an event about `obj`; failures are logged, never raised (like client-go)."""
        m = meta(obj)
        # Events about cluster-scoped objects go to "default" (tools/record/event.go).
        ns = namespace or m.get("namespace") or "default"
        involved: JSON = {
            "kind": kind,
            "namespace": m.get("namespace") or "",
            "name": m.get("name"),
            "uid": m.get("uid"),
            "apiVersion": api_version,
            "resourceVersion": m.get("resourceVersion"),
        }
        if not involved["namespace"]:
            del involved["namespace"]
        now = now_rfc3339()
        agg = (ns, kind, str(m.get("name")), str(m.get("uid")), etype, reason, message, component)
        try:
            prior = self._seen.get(agg)
            if prior is not None:
                with contextlib.suppress(ApiError):
                    ev = self.store.get("events", prior[0], prior[1])
                    ev["count"] = int(ev.get("count") or 1) + 1
                    ev["lastTimestamp"] = now
                    self.store.update("events", prior[0], prior[1], ev)
                    return
            name = f"{m.get('name')}.{secrets.token_hex(8)}"
            self.store.create(
                "events",
                ns,
                {
                    "apiVersion": "v1",
                    "kind": "Event",
                    "metadata": {"name": name, "namespace": ns},
                    "involvedObject": involved,
                    "reason": reason,
                    "message": message,
                    "type": etype,
                    "source": {"component": component},
                    "firstTimestamp": now,
                    "lastTimestamp": now,
                    "count": 1,
                    "reportingComponent": component,
                    "reportingInstance": "",
                },
            )
            self._seen[agg] = (ns, name)
            if len(self._seen) > 4096:  # bounded, like the correlator's LRU cache
                self._seen.pop(next(iter(self._seen)))
        except ApiError as exc:
            log.debug("event %s on %s not recorded: %s", reason, m.get("name"), exc)
