"""A pod worker never loses a wake-up, whenever it comes."""

from __future__ import annotations

import asyncio

from pytest_k8sdr.sim.node.nodespec import NodeSpec
from pytest_k8sdr.sim.node.podworkers import PassLimiter, PodWorkers, _PodWorker
from pytest_k8sdr.sim.node.runtime import Runtime
from pytest_k8sdr.sim.profiles import get_profile


def test_a_wake_between_a_pass_and_its_end_runs_another_pass() -> None:
    async def scenario() -> list[int]:
        spec = NodeSpec("n1", "127.1.0.2", "127.128.1.0/24")
        workers = PodWorkers(
            spec,
            client=None,  # type: ignore[arg-type]  # the fake pass below sends nothing
            runtime=Runtime(spec.name, serve=False),
            profile=get_profile("fast"),
            limiter=PassLimiter(4),
            active=lambda: True,
        )
        pod = {"metadata": {"uid": "u1", "name": "p", "namespace": "ns"}, "spec": {}}
        worker = _PodWorker("u1", pod)
        workers._workers["u1"] = worker
        passes: list[int] = []

        async def one_pass(w: _PodWorker) -> float | None:
            passes.append(len(passes) + 1)
            if len(passes) == 1:
                # A probe result arrives right after the pass's last look at `dirty` and
                # before the task's done callback (queued ahead of it).
                asyncio.get_running_loop().call_soon(workers._wake, w)
            return None

        workers._sync_pod = one_pass  # type: ignore[method-assign]
        workers._wake(worker)
        for _ in range(20):
            await asyncio.sleep(0)
        return passes

    assert asyncio.run(scenario()) == [1, 2]
