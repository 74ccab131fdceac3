"""The store, patching and selectors in-process (no HTTP): the pieces the server is made of."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from simapi_support import pod_body

from pytest_k8sdr.sim import ApiError, Store, WatchEvent
from pytest_k8sdr.sim.apimachinery.patch import (
    JSON_PATCH,
    MERGE_PATCH,
    STRATEGIC_MERGE_PATCH,
    apply_patch,
)
from pytest_k8sdr.sim.apimachinery.selectors import parse_field_selector, parse_label_selector
from pytest_k8sdr.sim.apiserver.protobuf import MAGIC, decode_protobuf_body
from pytest_k8sdr.sim.apiserver.registry.resources import BY_PLURAL

NODES = BY_PLURAL["nodes"]


def test_strategic_merge_by_merge_keys_and_directives() -> None:
    pod: dict[str, Any] = {
        "spec": {
            "containers": [
                {
                    "name": "a",
                    "image": "x:1",
                    "ports": [{"containerPort": 80}],
                    "env": [{"name": "E", "value": "1"}],
                },
                {"name": "b", "image": "y:1"},
            ],
            "tolerations": [{"key": "t1"}, {"key": "t2"}],
        },
        "status": {
            "conditions": [
                {"type": "Ready", "status": "False"},
                {"type": "PodScheduled", "status": "True"},
            ]
        },
    }
    out = apply_patch(
        pod,
        {
            "spec": {
                "containers": [
                    {
                        "name": "a",
                        "ports": [{"containerPort": 81}],
                        "env": [{"name": "E", "$patch": "delete"}],
                    },
                    {"name": "b", "$patch": "delete"},
                ],
                "tolerations": [{"key": "t3"}],
            },
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        },
        STRATEGIC_MERGE_PATCH,
    )
    [a] = out["spec"]["containers"]
    assert a["image"] == "x:1"
    assert a["ports"] == [{"containerPort": 80}, {"containerPort": 81}]
    assert a["env"] == []
    # Tolerations carry no patch strategy upstream: replaced whole.
    assert out["spec"]["tolerations"] == [{"key": "t3"}]
    assert out["status"]["conditions"] == [
        {"type": "Ready", "status": "True"},
        {"type": "PodScheduled", "status": "True"},
    ]
    assert pod["spec"]["containers"][1]["name"] == "b"  # input untouched
    retained = apply_patch(
        {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}},
        {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}},
        STRATEGIC_MERGE_PATCH,
    )
    assert retained["spec"]["strategy"] == {"type": "Recreate"}
    replaced = apply_patch(
        {"metadata": {"labels": {"a": "1"}}},
        {"metadata": {"labels": {"$patch": "replace", "b": "2"}}},
        STRATEGIC_MERGE_PATCH,
    )
    assert replaced["metadata"]["labels"] == {"b": "2"}
    ordered = apply_patch(
        {"spec": {"containers": [{"name": "a"}, {"name": "b"}]}},
        {
            "spec": {
                "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                "containers": [{"name": "a", "image": "z"}],
            }
        },
        STRATEGIC_MERGE_PATCH,
    )
    assert [c["name"] for c in ordered["spec"]["containers"]] == ["b", "a"]


def test_merge_and_json_patch() -> None:
    doc = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert apply_patch(doc, {"a": {"b": None, "c": [3]}}, MERGE_PATCH) == {"a": {"c": [3]}, "d": 1}
    ops = [
        {"op": "add", "path": "/a/c/-", "value": 9},
        {"op": "replace", "path": "/d", "value": 2},
        {"op": "move", "from": "/a/b", "path": "/e"},
        {"op": "copy", "from": "/e", "path": "/f"},
        {"op": "remove", "path": "/a/c/0"},
        {"op": "test", "path": "/d", "value": 2},
    ]
    assert apply_patch(doc, ops, JSON_PATCH) == {"a": {"c": [2, 9]}, "d": 2, "e": 1, "f": 1}
    with pytest.raises(ApiError) as info:
        apply_patch(doc, [{"op": "remove", "path": "/nope"}], JSON_PATCH)
    assert info.value.code == 422
    with pytest.raises(ApiError) as info:
        apply_patch(doc, {}, "application/apply-patch+yaml")
    assert info.value.code == 415


def test_selector_parsing_errors() -> None:
    assert len(parse_label_selector("a=b, c in (d, e), !f")) == 3
    with pytest.raises(ApiError) as info:
        parse_label_selector("a b c")
    assert info.value.code == 400
    assert parse_field_selector(NODES, "spec.unschedulable=true")[0].value == "true"
    with pytest.raises(ApiError) as info:
        parse_field_selector(NODES, "spec.nodeName=x")
    assert info.value.code == 400


def test_subscribers_see_commits_in_order_without_reentry() -> None:
    store = Store()
    seen: list[tuple[str, str]] = []

    def on_pod(event: WatchEvent) -> None:
        seen.append((event.type, event.object["metadata"]["name"]))
        if event.type == "ADDED" and event.object["metadata"]["name"] == "a":
            store.create("pods", "default", pod_body("b"))  # a write from inside a callback
            seen.append(("callback-returned", "a"))

    unsubscribe = store.subscribe("pods", on_pod)
    store.create("pods", "default", pod_body("a"))
    assert seen == [("ADDED", "a"), ("callback-returned", "a"), ("ADDED", "b")]
    unsubscribe()
    store.create("pods", "default", pod_body("c"))
    assert len(seen) == 3


def test_returned_objects_are_copies() -> None:
    store = Store()
    created = store.create("pods", "default", pod_body("a"))
    created["metadata"]["labels"]["app"] = "mutated"
    assert store.get("pods", "default", "a")["metadata"]["labels"]["app"] == "web"
    listed = store.list("pods", "default")["items"][0]
    listed["spec"]["containers"].clear()
    assert store.get("pods", "default", "a")["spec"]["containers"]


def test_no_op_update_commits_nothing() -> None:
    store = Store()
    pod = store.create("pods", "default", pod_body("a"))
    rv = store.resource_version
    again = store.update("pods", "default", "a", pod)
    assert store.resource_version == rv
    assert again["metadata"]["resourceVersion"] == pod["metadata"]["resourceVersion"]


def test_store_watch_expiry_and_selector_transitions() -> None:
    async def run() -> None:
        store = Store(history_max=2)
        start = store.resource_version
        body = pod_body("a")
        store.create("pods", "default", body)
        watch = store.watch(
            "pods",
            "default",
            label_selector="app=web",
            resource_version=str(store.resource_version),
        )
        store.patch(
            "pods", "default", "a", {"metadata": {"labels": {"app": "db"}}}, STRATEGIC_MERGE_PATCH
        )
        store.patch(
            "pods", "default", "a", {"metadata": {"labels": {"app": "web"}}}, STRATEGIC_MERGE_PATCH
        )
        lines = [watch.queue.get_nowait() for _ in range(2)]
        # Leaving the selected set is DELETED for this watcher, coming back is ADDED.
        assert lines[0] is not None
        assert lines[0].startswith(b'{"type":"DELETED"')
        assert lines[1] is not None
        assert lines[1].startswith(b'{"type":"ADDED"')
        watch.close()
        with pytest.raises(ApiError) as info:
            store.watch("pods", "default", resource_version=str(start))
        assert info.value.code == 410
        assert "too old resource version" in info.value.message

    asyncio.run(run())


def test_field_selectors_over_history_and_the_node_index() -> None:
    """Selectors read the values each stored version kept.

    A replay from history sees the old version's phase and node, not the current one's.
    """

    async def run() -> None:
        store = Store()
        store.create("pods", "default", pod_body("a"))
        since = str(store.resource_version)
        store.bind("default", "a", {"target": {"kind": "Node", "name": "n1"}})
        store.patch(
            "pods",
            "default",
            "a",
            {"status": {"phase": "Running"}},
            STRATEGIC_MERGE_PATCH,
            subresource="status",
        )
        watch = store.watch(
            "pods",
            "default",
            field_selector="spec.nodeName=n1,status.phase!=Running",
            resource_version=since,
        )
        lines = [watch.queue.get_nowait() for _ in range(2)]
        assert watch.queue.empty()
        # Bound to n1 while Pending: it enters the set; Running: it leaves it.
        assert lines[0] is not None
        assert lines[0].startswith(b'{"type":"ADDED"')
        assert lines[1] is not None
        assert lines[1].startswith(b'{"type":"DELETED"')
        watch.close()
        on_n1 = store.list("pods", field_selector="spec.nodeName=n1")["items"]
        assert [p["status"]["phase"] for p in on_n1] == ["Running"]
        assert store.list("pods", field_selector="spec.nodeName=")["items"] == []
        running = store.list(
            "pods", label_selector="app=web", field_selector="status.phase=Running"
        )
        assert [p["metadata"]["name"] for p in running["items"]] == ["a"]

    asyncio.run(run())


def test_continue_token_expires_with_410() -> None:
    store = Store(history_window=0.0)
    for i in range(3):
        store.create("configmaps", "default", {"metadata": {"name": f"c{i}"}})
    page = store.list("configmaps", "default", limit=1)
    store.storage.expire_snapshots()
    with pytest.raises(ApiError) as info:
        store.list("configmaps", "default", limit=1, continue_token=page["metadata"]["continue"])
    assert info.value.code == 410


def test_finalize_namespace_removes_it_and_its_content() -> None:
    store = Store()
    store.create("namespaces", None, {"metadata": {"name": "gone"}})
    store.create("configmaps", "gone", {"metadata": {"name": "c"}})
    store.delete("namespaces", None, "gone")
    assert store.get("namespaces", None, "gone")["status"]["phase"] == "Terminating"
    store.finalize_namespace("gone")
    assert store.count("configmaps", "gone") == 0
    with pytest.raises(ApiError):
        store.get("namespaces", None, "gone")


def test_admission_hooks_and_subresource_registry() -> None:
    store = Store()
    calls: list[str] = []

    def hook(op: str, new: dict[str, Any], old: dict[str, Any] | None) -> None:
        calls.append(op)
        new["metadata"].setdefault("annotations", {})["admitted"] = op

    store.add_admission("configmaps", hook)
    cm = store.create("configmaps", "default", {"metadata": {"name": "c"}})
    assert cm["metadata"]["annotations"]["admitted"] == "CREATE"
    cm["data"] = {"k": "v"}
    assert (
        store.update("configmaps", "default", "c", cm)["metadata"]["annotations"]["admitted"]
        == "UPDATE"
    )
    assert calls == ["CREATE", "UPDATE"]
    assert store.subresource_handler("pods", "eviction") is None
    store.register_subresource("pods", "eviction", lambda ns, name, body: {"kind": "Status"})
    handler = store.subresource_handler("pods", "eviction")
    assert handler is not None
    assert handler("default", "x", {}) == {"kind": "Status"}


def _field(num: int, payload: bytes) -> bytes:
    return bytes([num << 3 | 2, len(payload)]) + payload


def test_protobuf_delete_options_and_namespace() -> None:
    type_meta = _field(1, b"v1") + _field(2, b"Namespace")
    meta = _field(1, b"ns1") + _field(11, _field(1, b"k") + _field(2, b"v"))
    raw = MAGIC + _field(1, type_meta) + _field(2, _field(1, meta))
    assert decode_protobuf_body(raw) == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "ns1", "labels": {"k": "v"}},
    }
    opts = bytes([1 << 3 | 0, 5]) + _field(4, b"Foreground")
    raw = MAGIC + _field(1, _field(1, b"v1") + _field(2, b"DeleteOptions")) + _field(2, opts)
    assert decode_protobuf_body(raw) == {"gracePeriodSeconds": 5, "propagationPolicy": "Foreground"}
    raw = MAGIC + _field(1, _field(1, b"example.com/v1") + _field(2, b"Widget")) + _field(2, b"")
    with pytest.raises(ApiError) as info:
        decode_protobuf_body(raw)
    assert info.value.code == 415


def test_dangling_owner_reference_is_collected_without_a_loop() -> None:
    store = Store()
    owner = store.create("configmaps", "default", {"metadata": {"name": "owner"}})
    ref = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "owner",
        "uid": owner["metadata"]["uid"],
    }
    store.create("configmaps", "default", {"metadata": {"name": "kept", "ownerReferences": [ref]}})
    bad = {**ref, "uid": "missing"}
    store.create("configmaps", "default", {"metadata": {"name": "gone", "ownerReferences": [bad]}})
    names = [c["metadata"]["name"] for c in store.list("configmaps", "default")["items"]]
    assert names == ["kept", "owner"]
    store.delete("configmaps", "default", "owner")
    assert store.count("configmaps", "default") == 0
