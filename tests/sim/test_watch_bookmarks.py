"""Regression: a bookmark falling due while events are queued must not stall the watch."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from pytest_k8sdr.sim import SimCluster


@pytest.fixture(scope="module")
def fast_bookmarks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimCluster]:
    sim = SimCluster.start(
        tmp_path_factory.mktemp("bm") / "sim",
        workers=0,
        server_args=["--bookmark-interval", "0.01"],
    )
    try:
        yield sim
    finally:
        sim.stop()


def test_watch_with_bookmarks_delivers_a_burst_of_events(
    fast_bookmarks: SimCluster, tmp_path: Path
) -> None:
    api = client.ApiClient(
        config.new_client_from_config(str(fast_bookmarks.kubeconfig_path)).configuration
    )
    core = client.CoreV1Api(api)
    listed = json.loads(core.list_namespaced_config_map("default", _preload_content=False).data)
    rv = listed["metadata"]["resourceVersion"]
    total = 300

    def burst() -> None:
        for i in range(total):
            core.create_namespaced_config_map(
                "default", {"metadata": {"name": f"cm-{i}"}}, _preload_content=False
            )

    writer = threading.Thread(target=burst)
    writer.start()
    resp = core.list_namespaced_config_map(
        "default",
        watch=True,
        resource_version=rv,
        allow_watch_bookmarks=True,
        timeout_seconds=30,
        _preload_content=False,
        _request_timeout=40,
    )
    seen: set[str] = set()
    started = time.monotonic()
    buffer = b""
    for chunk in resp.stream(amt=None, decode_content=False):
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            event = json.loads(line)
            if event["type"] == "ADDED":
                seen.add(event["object"]["metadata"]["name"])
        if len(seen) == total:
            break
    resp.release_conn()
    writer.join()
    assert len(seen) == total, f"watch stalled after {len(seen)} of {total} events"
    assert time.monotonic() - started < 25
