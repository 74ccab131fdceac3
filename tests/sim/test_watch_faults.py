"""Watches across 410 and cut connections, and the injected faults, with the Python client."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException
from simapi_support import all_controllers, make_api_client

from pytest_k8sdr.sim.faults import FaultConfig
from pytest_k8sdr.sim.launcher import SimCluster


def _cluster(path: Path, **kw: object) -> SimCluster:
    return SimCluster.start(path, workers=0, disabled_controllers=all_controllers(), **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def short_history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[client.CoreV1Api]:
    """A server that keeps only the last 3 changes, so old resourceVersions expire at once."""
    cluster = _cluster(
        tmp_path_factory.mktemp("sim-history"),
        server_args=["--history-max", "3", "--bookmark-interval", "0.2"],
    )
    api = make_api_client(cluster)
    try:
        yield client.CoreV1Api(api)
    finally:
        api.close()
        cluster.stop()


def test_watch_from_expired_rv_raises_410(short_history: client.CoreV1Api) -> None:
    core = short_history
    old_rv = core.list_namespaced_config_map("default").metadata.resource_version
    for i in range(6):
        core.create_namespaced_config_map("default", {"metadata": {"generateName": "c-"}})
        del i
    with pytest.raises(ApiException) as info:
        for _ in watch.Watch().stream(
            core.list_namespaced_config_map, "default", resource_version=old_rv, timeout_seconds=2
        ):
            pass
    assert info.value.status == 410
    assert "too old resource version" in info.value.reason
    # Without timeout_seconds the client retries once from the same RV, then raises too.
    with pytest.raises(ApiException) as info:
        for _ in watch.Watch().stream(
            core.list_namespaced_config_map, "default", resource_version=old_rv
        ):
            pass
    assert info.value.status == 410
    # The recovery clients use: re-list, then watch from the list's RV.
    fresh = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map("default", {"metadata": {"name": "after-relist"}})
    events = [
        e["object"].metadata.name
        for e in watch.Watch().stream(
            core.list_namespaced_config_map, "default", resource_version=fresh, timeout_seconds=1
        )
    ]
    assert events == ["after-relist"]


def test_bookmarks_when_allowed(short_history: client.CoreV1Api) -> None:
    core = short_history
    rv = core.list_namespaced_config_map("default").metadata.resource_version
    resp = core.list_namespaced_config_map(
        "default",
        watch=True,
        resource_version=rv,
        allow_watch_bookmarks=True,
        timeout_seconds=1,
        _preload_content=False,
    )
    try:
        lines = [json.loads(line) for line in resp.read().splitlines() if line.strip()]
    finally:
        resp.release_conn()
    bookmarks = [e for e in lines if e["type"] == "BOOKMARK"]
    assert bookmarks, lines
    assert bookmarks[0]["object"]["kind"] == "ConfigMap"
    assert int(bookmarks[0]["object"]["metadata"]["resourceVersion"]) >= int(rv)


def test_watch_resumes_across_cut_connections(tmp_path: Path) -> None:
    cluster = _cluster(tmp_path / "sim", faults=FaultConfig(watch_cut_seconds=0.4))
    api = make_api_client(cluster)
    try:
        core = client.CoreV1Api(api)
        start_rv = core.list_namespaced_config_map("default").metadata.resource_version
        names = [f"cut-{i}" for i in range(6)]

        def writer() -> None:
            for name in names:
                time.sleep(0.25)  # spread the writes over several cuts
                core.create_namespaced_config_map("default", {"metadata": {"name": name}})

        thread = threading.Thread(target=writer)
        thread.start()
        seen: list[str] = []
        w = watch.Watch()
        started = time.monotonic()
        for event in w.stream(
            core.list_namespaced_config_map, "default", resource_version=start_rv
        ):
            assert event["type"] == "ADDED"
            seen.append(event["object"].metadata.name)
            if len(seen) == len(names):
                w.stop()
        thread.join()
        assert seen == names  # each exactly once, in order, across reconnects
        assert time.monotonic() - started > 1.0  # at least two cuts happened on the way
    finally:
        api.close()
        cluster.stop()


def test_injected_errors_and_latency(tmp_path: Path) -> None:
    faults = FaultConfig(error_rate=0.5, latency_ms=30, retry_after=3)
    cluster = _cluster(tmp_path / "sim", faults=faults)
    api = make_api_client(cluster, retries=False)
    try:
        core = client.CoreV1Api(api)
        codes: list[int] = []
        retry_after: set[str] = set()
        started = time.monotonic()
        for _ in range(40):
            try:
                core.list_namespace(_request_timeout=5)
                codes.append(200)
            except ApiException as exc:
                codes.append(exc.status)
                body = json.loads(exc.body)
                assert body["kind"] == "Status"
                if exc.status == 429:
                    assert body["reason"] == "TooManyRequests"
                    retry_after.add(exc.headers.get("Retry-After"))
                else:
                    assert body["reason"] == "InternalError"
        elapsed = time.monotonic() - started
        assert {200, 500, 429} <= set(codes)
        assert retry_after == {"3"}
        assert elapsed >= 40 * 0.03
    finally:
        api.close()
        cluster.stop()


def test_fault_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="error_rate"):
        FaultConfig(error_rate=1.5)
    with pytest.raises(ValueError, match="error_codes"):
        FaultConfig(error_codes=(503,))
    assert not FaultConfig().enabled
