"""The pods/eviction subresource against PodDisruptionBudgets."""

from __future__ import annotations

import pytest
from ctrl_support import Cluster, condition, ready_pods, run

from pytest_k8sdr.sim import ApiError


def _evict(c: Cluster, name: str, **delete_options: object) -> dict:
    handler = c.store.subresource_handler("pods", "eviction")
    assert handler is not None
    body = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": name, "namespace": "default"},
        "deleteOptions": delete_options,
    }
    return handler("default", name, body)


def _pdb(c: Cluster, name: str, **spec: object) -> None:
    c.store.create(
        "poddisruptionbudgets",
        "default",
        {"metadata": {"name": name}, "spec": {"selector": {"matchLabels": {"app": "web"}}, **spec}},
    )


async def _pdb_status(c: Cluster, name: str, **want: int) -> dict:
    """Wait until the disruption controller's status of PDB `name` holds `want`; that status."""

    def status() -> dict | None:
        got = c.store.get("poddisruptionbudgets", "default", name).get("status", {})
        return got if all(got.get(k) == v for k, v in want.items()) else None

    return await c.wait_for(status, 5, f"status of pdb {name}: {want}")


async def _web(c: Cluster, n: int = 3) -> list[dict]:
    c.add_node("w1")
    c.add_node("w2")
    c.deployment("web", n)
    return await c.wait_for(lambda: ready_pods(c, "app=web", n), 10, "web ready")


def test_blocking_pdb_answers_429_without_retry_after() -> None:
    async def scenario(c: Cluster) -> None:
        pods = await _web(c)
        _pdb(c, "all", minAvailable=3)
        status = await _pdb_status(c, "all", observedGeneration=1)
        assert status["disruptionsAllowed"] == 0
        assert status["currentHealthy"] == 3
        assert status["desiredHealthy"] == 3
        name = pods[0]["metadata"]["name"]
        with pytest.raises(ApiError) as info:
            _evict(c, name)
        err = info.value
        assert err.code == 429
        assert err.reason == "TooManyRequests"
        assert err.message == "Cannot evict pod as it would violate the pod's disruption budget."
        assert not err.retry_after
        assert "retryAfterSeconds" not in err.details
        assert err.details["causes"][0]["type"] == "DisruptionBudget"
        assert not c.store.get("pods", "default", name)["metadata"].get("deletionTimestamp")

    run(scenario)


def test_allowed_eviction_is_201_and_marks_the_pod() -> None:
    async def scenario(c: Cluster) -> None:
        pods = await _web(c)
        _pdb(c, "some", maxUnavailable=1)
        await _pdb_status(c, "some", disruptionsAllowed=1)
        name = pods[0]["metadata"]["name"]
        answer = _evict(c, name)
        assert answer["status"] == "Success"
        assert answer["code"] == 201
        pod = c.store.get("pods", "default", name)
        assert pod["metadata"]["deletionTimestamp"]
        dt = condition(pod, "DisruptionTarget")
        assert (dt["reason"], dt["message"]) == ("EvictionByEvictionAPI", "Eviction API: evicting")
        pdb = c.store.get("poddisruptionbudgets", "default", "some")
        assert pdb["status"]["disruptionsAllowed"] == 0
        # The second one is refused until a replacement is ready.
        other = pods[1]["metadata"]["name"]
        with pytest.raises(ApiError) as info:
            _evict(c, other)
        assert info.value.code == 429
        await _pdb_status(c, "some", disruptionsAllowed=1)
        assert _evict(c, other)["code"] == 201

    run(scenario)


def test_dry_run_eviction_checks_the_budget_and_writes_nothing() -> None:
    async def scenario(c: Cluster) -> None:
        pods = await _web(c)
        _pdb(c, "some", maxUnavailable=1)
        await _pdb_status(c, "some", disruptionsAllowed=1)
        name = pods[0]["metadata"]["name"]
        before = c.store.get("poddisruptionbudgets", "default", "some")
        pod_before = c.store.get("pods", "default", name)
        assert _evict(c, name, dryRun=["All"])["code"] == 201
        assert c.store.get("pods", "default", name) == pod_before
        after = c.store.get("poddisruptionbudgets", "default", "some")
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
        with pytest.raises(ApiError) as info:
            _evict(c, name, dryRun=["Everything"])
        assert info.value.code == 400
        # A real eviction spends the budget; a dry run of the next one is refused as it would be.
        assert _evict(c, name)["code"] == 201
        with pytest.raises(ApiError) as info:
            _evict(c, pods[1]["metadata"]["name"], dryRun=["All"])
        assert info.value.code == 429

    run(scenario)


def test_two_pdbs_is_500_and_missing_pod_is_404() -> None:
    async def scenario(c: Cluster) -> None:
        pods = await _web(c)
        _pdb(c, "one", maxUnavailable=1)
        _pdb(c, "two", maxUnavailable=1)
        with pytest.raises(ApiError) as info:
            _evict(c, pods[0]["metadata"]["name"])
        assert info.value.code == 500
        assert "more than one PodDisruptionBudget" in info.value.message
        with pytest.raises(ApiError) as missing:
            _evict(c, "nope")
        assert missing.value.code == 404

    run(scenario)


def test_eviction_is_served_without_the_disruption_controller() -> None:
    async def scenario(c: Cluster) -> None:
        pods = await _web(c)
        _pdb(c, "stale", maxUnavailable=1)
        # Nobody computes the PDB status: the API server says "still being processed".
        with pytest.raises(ApiError) as info:
            _evict(c, pods[0]["metadata"]["name"])
        assert info.value.code == 429
        assert info.value.details["retryAfterSeconds"] == 10

    run(scenario, disabled={"disruption"})


def test_pending_pod_is_evicted_without_pdb_check() -> None:
    async def scenario(c: Cluster) -> None:
        c.deployment("web", 1)  # no nodes: stays Pending
        pod = await c.wait_for(lambda: c.pods(selector="app=web"), 3, "pod created")
        _pdb(c, "all", minAvailable=5)
        assert _evict(c, pod[0]["metadata"]["name"])["code"] == 201

    run(scenario)
