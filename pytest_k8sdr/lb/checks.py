"""Checks on an external load balancer: the node is out of (or back in) rotation, for real.

Each check reads the load balancer's own view (`nginx -T`, the HAProxy runtime API), then,
given a running `TrafficProbe`, waits for a clean window of traffic: `window` seconds, at least
`min_requests` requests, none failed, and (drained) none answered by the node or (restored) at
least `min_answers` answered by it. The window may start once the last bad request is behind, so
a reload that takes a moment to reach every worker is not a failure; it must be complete within
`timeout` seconds of the call (by default the runbook phase's remaining SLO). Node names are
matched against what the pods report (``X-K8sdr-Node``), so pass the node's name, not its
address.

Each returns a `Result` whose value is the clean window's `ProbeSummary` (None without a probe)
and whose time is when the traffic turned clean (the window's verification is not counted).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from pytest_k8sdr.errors import ClusterCheckFailed
from pytest_k8sdr.lb.base import LoadBalancer, Member, split_host_port
from pytest_k8sdr.lb.probe import ProbeRecord, ProbeSummary, TrafficProbe, summarize, wall_clock
from pytest_k8sdr.results import Result, deadline_for, report


def assert_lb_drained(
    lb: LoadBalancer,
    node: str,
    *,
    probe: TrafficProbe | None = None,
    window: float = 1.0,
    min_requests: int = 5,
    timeout: float | None = None,
) -> Result[ProbeSummary | None]:
    """Assert `lb` no longer routes to `node`, and traffic through it avoids the node cleanly."""
    __tracebackhide__ = True
    address = lb.address_of(node)
    members = lb.members()
    routed = [m for m in members if m.address == address and m.active]
    if routed:
        raise ClusterCheckFailed(
            f"{lb.name} still routes to node {node} ({address}): "
            f"{_members(routed)}; all servers: {_members(members)}"
        )
    if probe is None:
        return _configured(lb, f"{lb.name} routes to none of node {node}'s servers ({address})")
    return _clean_window(
        probe,
        label="LB drained",
        what=f"after draining node {node} ({address}) from {lb.name}",
        bad=lambda r: not r.ok or r.node == node or _tried(r, address),
        good=lambda r: False,
        min_answers=0,
        window=window,
        timeout=timeout,
        min_requests=min_requests,
        node=node,
        address=address,
    )


def assert_lb_restored(
    lb: LoadBalancer,
    node: str,
    *,
    probe: TrafficProbe | None = None,
    window: float = 1.0,
    min_requests: int = 5,
    min_answers: int = 1,
    timeout: float | None = None,
) -> Result[ProbeSummary | None]:
    """Assert `lb` routes to `node` again, and traffic through it reaches the node cleanly."""
    __tracebackhide__ = True
    address = lb.address_of(node)
    members = lb.members()
    mine = [m for m in members if m.address == address]
    if not any(m.active for m in mine):
        found = _members(mine) if mine else "it is in no server"
        raise ClusterCheckFailed(
            f"{lb.name} does not route to node {node} ({address}): {found}; "
            f"all servers: {_members(members)}"
        )
    if probe is None:
        return _configured(lb, f"{lb.name} routes to node {node} ({address}) again")
    return _clean_window(
        probe,
        label="LB restored",
        what=f"after restoring node {node} ({address}) in {lb.name}",
        bad=lambda r: not r.ok,
        # The node serves again when a pod on it answers or, with externalTrafficPolicy
        # Cluster, when the LB sent the request to its NodePort (nothing moves back to a
        # returned node, so its NodePort may forward to pods elsewhere).
        good=lambda r: r.node == node or _served_by(r, address),
        min_answers=min_answers,
        window=window,
        timeout=timeout,
        min_requests=min_requests,
        node=node,
        address=address,
    )


def assert_lb_serving(
    lb: LoadBalancer,
    *,
    probe: TrafficProbe,
    window: float = 1.0,
    min_requests: int = 5,
    timeout: float | None = None,
) -> Result[ProbeSummary | None]:
    """Assert traffic through `lb` is served again: a clean window, every request answered."""
    __tracebackhide__ = True
    return _clean_window(
        probe,
        label="LB serving",
        what=f"traffic through {lb.name}",
        bad=lambda r: not r.ok,
        good=lambda r: r.ok,
        min_answers=min_requests,
        window=window,
        timeout=timeout,
        min_requests=min_requests,
        node="",
        address="",
    )


def _configured(lb: LoadBalancer, observed: str) -> Result[ProbeSummary | None]:
    """The result of a check of the configuration alone: decided by the LB's last change."""
    changed = lb.last_change
    at = wall_clock(changed) if changed is not None else datetime.now(UTC)
    return report(Result(None, at, observed))


def _clean_window(
    probe: TrafficProbe,
    *,
    label: str,
    what: str,
    bad: Callable[[ProbeRecord], bool],
    good: Callable[[ProbeRecord], bool],
    min_answers: int,
    window: float,
    timeout: float | None,
    min_requests: int,
    node: str,
    address: str,
) -> Result[ProbeSummary | None]:
    __tracebackhide__ = True
    if not probe.running:
        raise ClusterCheckFailed(f"{what}: the traffic probe for {probe.url} is not running")
    start = probe.now()
    deadline, _ = deadline_for(timeout)
    timeout = deadline - start
    while True:
        settled = probe.settled_until()
        records = probe.records(since=start, until=settled)
        bads = [r for r in records if bad(r)]
        clean_from = bads[-1].t + 1e-9 if bads else start
        clean = [r for r in records if r.t >= clean_from]
        if (
            settled - clean_from >= window
            and len(clean) >= min_requests
            and sum(1 for r in clean if good(r)) >= min_answers
        ):
            summary = summarize(clean, clean_from, settled)
            observed = f"{what}: a clean {window:.1f}s window, {summary.describe()}"
            # Decided when the traffic turned clean: the window only confirms it.
            return report(
                Result(summary, wall_clock(clean_from), observed, probe.now() - start), label
            )
        now = probe.now()
        if now >= deadline or not probe.running:
            break
        probe.wait_for_record(min(deadline - now, window))
    records = probe.records(since=start, until=probe.settled_until())
    raise ClusterCheckFailed(
        _failure(what, records, start, window, timeout, node, address, min_answers)
    )


def _failure(
    what: str,
    records: list[ProbeRecord],
    start: float,
    window: float,
    timeout: float,
    node: str,
    address: str,
    min_answers: int,
) -> str:
    total = summarize(records, start, records[-1].t + 1e-9 if records else start)
    lines = [f"{what}: no clean {window:.1f}s window of traffic within {timeout:.1f}s."]
    mine = [r for r in records if r.ok and r.node == node] if node else []
    if min_answers and node:
        served = [r for r in records if r.ok and (r.node == node or _served_by(r, address))]
        lines.append(
            f"node {node} answered or served {len(served)} request(s) "
            f"(needs {min_answers} in a window)"
        )
    elif mine:
        lines.append(
            f"node {node} still answered {len(mine)} request(s), the last "
            f"{mine[-1].t - start:+.2f}s after the check began (pods: "
            f"{', '.join(sorted({r.pod or '?' for r in mine}))})"
        )
    tried = [r for r in records if r.ok and r.node != node and _tried(r, address)] if node else []
    if tried and not min_answers:
        lines.append(
            f"{len(tried)} request(s) were first sent to {address} and retried elsewhere, "
            f"the last {tried[-1].t - start:+.2f}s after the check began"
        )
    failed = [r for r in records if not r.ok]
    if failed:
        shown = ", ".join(f"{r.t - start:+.2f}s {r.error}" for r in failed[-10:])
        more = f" (last 10 of {len(failed)})" if len(failed) > 10 else ""
        lines.append(f"{len(failed)} request(s) failed{more}: {shown}")
    lines.append(f"traffic since the check began: {total.describe()}")
    return "\n".join(lines)


def _served_by(record: ProbeRecord, address: str) -> bool:
    """Whether the load balancer's upstream header says the server at `address` answered."""
    if record.upstream is None:
        return False
    last = record.upstream.split(",")[-1].strip()
    return split_host_port(last, None)[0] == address


def _tried(record: ProbeRecord, address: str) -> bool:
    """Whether the load balancer's upstream header says it tried a server at `address`."""
    if record.upstream is None:
        return False
    return any(split_host_port(s.strip(), None)[0] == address for s in record.upstream.split(","))


def _members(members: list[Member]) -> str:
    return ", ".join(f"{m.name} [{m.state}]" for m in members) or "none"
