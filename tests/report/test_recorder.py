"""The recorder puts the cluster's transitions on the timeline, without the test marking them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from pytest_k8sdr import Cluster, MakeWorkload
from pytest_k8sdr.faults.node import NodeFaults
from pytest_k8sdr.recorder import Event, Recorder


def _until(recorder: Recorder, found: Callable[[Event], bool], what: str) -> Event:
    # Events arrive on the recorder's watch threads: far from any bound a healthy run reaches.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        hit = next((e for e in list(recorder.events) if found(e)), None)
        if hit is not None:
            return hit
        time.sleep(0.05)
    seen = "\n".join(f"{e.lane}: {e.label}" for e in recorder.events)
    raise AssertionError(f"the recorder never saw {what}; it saw:\n{seen}")


def test_pods_endpoints_cordon_and_deletion_are_recorded_and_stop_is_clean(
    cluster: Cluster,
    make_workload: MakeWorkload,
    node_faults: NodeFaults,
    k8sdr_recorder: Recorder,
) -> None:
    web = make_workload("rec", replicas=2)
    # Created after the namespace's watches started: each pod's whole life is on the timeline.
    for pod in web.pods():
        _until(k8sdr_recorder, lambda e, p=pod: e.label == f"pod {p.name} created", "a pod created")
        _until(k8sdr_recorder, lambda e, p=pod: e.label == f"pod {p.name} Ready", "a pod Ready")
    _until(k8sdr_recorder, lambda e: e.label == "rec: 2 ready endpoints", "the endpoints")

    node = web.busiest_node()
    node_faults.cordon(node)
    fault = _until(k8sdr_recorder, lambda e: e.lane == "faults", "the cordon, from the undo stack")
    assert fault.label == f"cordon node {node}"
    cordoned = _until(k8sdr_recorder, lambda e: e.label == f"{node} cordoned", "the cordon")
    assert cordoned.lane == "nodes"
    assert cordoned.t >= fault.t

    victim = web.pods()[0]
    cluster.call(cluster.core.delete_namespaced_pod, victim.name, victim.namespace)
    _until(k8sdr_recorder, lambda e: e.label == f"pod {victim.name} deleted", "the pod deleted")
    _until(
        k8sdr_recorder,
        lambda e: e.label.startswith("Killing") or "SuccessfulCreate" in e.label,
        "the cluster's own Events",
    )

    threads = [t for t in threading.enumerate() if t.name.startswith("k8sdr-recorder")]
    assert len(threads) == 4  # nodes, pods, EndpointSlices, Events: one watch each
    k8sdr_recorder.stop()
    assert not [t for t in threads if t.is_alive()]
    count = len(k8sdr_recorder.events)
    node_faults.uncordon(node)  # its watches ended and it left the undo stack: not heard
    assert len(k8sdr_recorder.events) == count
    times = [e["t"] for e in k8sdr_recorder.to_json()["events"]]
    assert times == sorted(times)


def test_off_opens_no_watch(pytester) -> None:  # type: ignore[no-untyped-def]
    pytester.makepyfile(
        """
        import threading

        def test_quiet(namespace, k8sdr_recorder):
            assert not k8sdr_recorder.enabled
            assert not [t for t in threading.enumerate() if t.name.startswith("k8sdr-recorder")]
        """
    )
    result = pytester.runpytest_subprocess("-W", "error", "--k8sdr-recorder=off")
    result.assert_outcomes(passed=1)
