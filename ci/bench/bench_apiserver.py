"""Benchmark of the simulated API server (prints figures; asserts nothing).

    .venv/bin/python ci/bench/bench_apiserver.py [--pods 30000] [--nodes 1000] [--watchers 100]

Starts a server with no nodes and no controllers, then measures over HTTPS with an aiohttp
client in this process (the client shares the machine's cores with the server, as tests do):

- baseline: latency of GET /version (TLS + HTTP + auth, no store work), the unit the other
  figures are compared with;
- writes/s sustained: ConfigMap creates from 32 concurrent clients for a few seconds;
- write latency at a paced 200 writes/s (p50/p99);
- list latency for the pods of one node out of --pods pods on --nodes nodes
  (fieldSelector=spec.nodeName=...), and a full-namespace list for contrast;
- watch fan-out: --watchers watches on one namespace; time from a create's response to
  the event reaching every watcher, and events delivered per second.

Targets (issue 3): >= 1,000 writes/s; p99 < 50 ms at 200 writes/s; selected list < 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from pytest_k8sdr.sim.controllers import CONTROLLERS
from pytest_k8sdr.sim.launcher import SimCluster


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) of values, in the values' unit."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    idx = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[idx]


class Bench:
    """One benchmark run against one server."""

    def __init__(self, cluster: SimCluster, session: aiohttp.ClientSession) -> None:
        self.url = cluster.server_url
        self.session = session
        self.headers = {"Authorization": f"Bearer {cluster.token}"}
        self.json_headers = {**self.headers, "Content-Type": "application/json"}
        self.counter = 0

    async def get(self, path: str) -> bytes:
        """GET, returning the body; raises unless 200."""
        async with self.session.get(self.url + path, headers=self.headers) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"GET {path}: {resp.status} {body[:200]!r}")
            return body

    async def post(self, path: str, obj: dict[str, Any]) -> dict[str, Any]:
        """POST JSON, returning the decoded body; raises unless 201."""
        data = json.dumps(obj).encode()
        async with self.session.post(self.url + path, data=data, headers=self.json_headers) as resp:
            body = await resp.read()
            if resp.status != 201:
                raise RuntimeError(f"POST {path}: {resp.status} {body[:200]!r}")
            return json.loads(body)  # type: ignore[no-any-return]

    async def create_cm(self, ns: str) -> None:
        """Create one ConfigMap with a fresh name."""
        self.counter += 1
        await self.post(
            f"/api/v1/namespaces/{ns}/configmaps",
            {
                "metadata": {"name": f"cm-{self.counter}", "labels": {"bench": "1"}},
                "data": {"k": "v"},
            },
        )

    async def baseline(self, n: int = 300) -> list[float]:
        """Latencies of GET /version (no store work)."""
        out = []
        for _ in range(n):
            t = time.perf_counter()
            await self.get("/version")
            out.append(time.perf_counter() - t)
        return out

    async def writes_per_second(self, ns: str, seconds: float, concurrency: int = 32) -> float:
        """Creates per second with `concurrency` clients for `seconds`."""
        done = 0
        stop_at = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < stop_at:
                await self.create_cm(ns)
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - start)

    async def paced_latency(self, ns: str, rate: float, seconds: float) -> list[float]:
        """Create latencies with creates started at a fixed `rate`."""
        latencies: list[float] = []
        interval = 1.0 / rate
        start = time.perf_counter()
        tasks = []

        async def one() -> None:
            t = time.perf_counter()
            await self.create_cm(ns)
            latencies.append(time.perf_counter() - t)

        for i in range(int(rate * seconds)):
            delay = start + i * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
        return latencies

    async def load_pods(self, ns: str, pods: int, nodes: int, concurrency: int = 32) -> float:
        """Create `pods` bound pods spread over `nodes` node names; seconds taken."""
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(pods):
            queue.put_nowait(i)

        async def worker() -> None:
            while True:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await self.post(
                    f"/api/v1/namespaces/{ns}/pods",
                    {
                        "metadata": {"name": f"pod-{i}", "labels": {"app": f"app-{i % 50}"}},
                        "spec": {
                            "nodeName": f"node-{i % nodes}",
                            "containers": [{"name": "c", "image": "nginx:1.25"}],
                        },
                    },
                )

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - start

    async def list_latency(self, path: str, n: int) -> tuple[list[float], int]:
        """Latencies of `n` lists of `path` and the item count."""
        out = []
        items = 0
        for _ in range(n):
            t = time.perf_counter()
            body = await self.get(path)
            out.append(time.perf_counter() - t)
            items = len(json.loads(body)["items"])
        return out, items

    async def fanout(self, ns: str, watchers: int, events: int) -> tuple[list[float], float]:
        """Per-event lag to the last of `watchers`, and events delivered per second."""
        rv = json.loads(await self.get(f"/api/v1/namespaces/{ns}/configmaps?limit=1"))["metadata"][
            "resourceVersion"
        ]
        arrivals: dict[str, list[float]] = {}
        ready = asyncio.Event()
        opened = 0

        async def watch() -> None:
            nonlocal opened
            path = f"/api/v1/namespaces/{ns}/configmaps?watch=1&resourceVersion={rv}"
            async with self.session.get(self.url + path, headers=self.headers) as resp:
                opened += 1
                if opened == watchers:
                    ready.set()
                seen = 0
                while seen < events:
                    line = await resp.content.readline()
                    if not line:
                        return
                    now = time.perf_counter()
                    name = json.loads(line)["object"]["metadata"]["name"]
                    arrivals.setdefault(name, []).append(now)
                    seen += 1

        tasks = [asyncio.create_task(watch()) for _ in range(watchers)]
        await ready.wait()
        sent: dict[str, float] = {}
        start = time.perf_counter()
        for i in range(events):
            name = f"fan-{i}"
            await self.post(f"/api/v1/namespaces/{ns}/configmaps", {"metadata": {"name": name}})
            sent[name] = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*tasks), 120)
        elapsed = time.perf_counter() - start
        lags = [max(arrivals[n]) - sent[n] for n in sent if len(arrivals.get(n, [])) == watchers]
        return lags, watchers * events / elapsed


async def run(args: argparse.Namespace, cluster: SimCluster) -> None:
    """Every measurement, printed as it completes."""
    ctx = ssl.create_default_context(cafile=str(cluster.state_dir / "pki" / "ca.crt"))
    connector = aiohttp.TCPConnector(ssl=ctx, limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        b = Bench(cluster, session)
        for ns in ("bench-w", "bench-p", "bench-f"):
            await b.post("/api/v1/namespaces", {"metadata": {"name": ns}})

        base = await b.baseline()
        base_p50 = statistics.median(base) * 1000

        def ms(values: list[float]) -> str:
            p50, p99 = statistics.median(values) * 1000, pct(values, 99) * 1000
            return f"p50 {p50:8.2f} ms  p99 {p99:8.2f} ms"

        def verdict(ok: bool) -> str:
            return "OK" if ok else "MISSED"

        print(f"{'baseline GET /version':<34} {ms(base)}")

        wps = await b.writes_per_second("bench-w", args.write_seconds)
        print(
            f"{'writes/s sustained (32 clients)':<34} {wps:8.0f} /s  "
            f"(>= 1000: {verdict(wps >= 1000)})"
        )

        lat = await b.paced_latency("bench-w", 200.0, args.paced_seconds)
        ratio = statistics.median(lat) * 1000 / base_p50
        ok = pct(lat, 99) < 0.050
        print(
            f"{'write latency at 200 writes/s':<34} {ms(lat)}  (p99 < 50 ms: {verdict(ok)}; "
            f"p50 {ratio:.1f}x baseline)"
        )

        load = await b.load_pods("bench-p", args.pods, args.nodes)
        print(
            f"loaded {args.pods} pods on {args.nodes} nodes in {load:.1f}s "
            f"({args.pods / load:.0f} creates/s)"
        )
        node = f"node-{args.nodes // 2}"
        sel, items = await b.list_latency(
            f"/api/v1/pods?fieldSelector=spec.nodeName%3D{node}", args.list_repeats
        )
        ratio = statistics.median(sel) * 1000 / base_p50
        ok = pct(sel, 99) < 0.100
        print(
            f"{'list fieldSelector spec.nodeName':<34} {ms(sel)}  ({items} pods; < 100 ms: "
            f"{verdict(ok)}; p50 {ratio:.1f}x baseline)"
        )
        lab, items = await b.list_latency(
            "/api/v1/namespaces/bench-p/pods?labelSelector=app%3Dapp-7", 3
        )
        print(f"{'list labelSelector (full scan)':<34} {ms(lab)}  ({items} pods)")
        full, items = await b.list_latency("/api/v1/namespaces/bench-p/pods", 3)
        print(f"{'list the whole namespace':<34} {ms(full)}  ({items} pods)")

        lags, rate = await b.fanout("bench-f", args.watchers, args.fanout_events)
        print(
            f"{f'watch fan-out to {args.watchers} watchers':<34} {ms(lags)}  "
            f"(create answered -> last watcher; {rate:.0f} events/s delivered)"
        )


def main() -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=30_000)
    parser.add_argument("--nodes", type=int, default=1_000)
    parser.add_argument("--watchers", type=int, default=100)
    parser.add_argument("--fanout-events", type=int, default=200)
    parser.add_argument("--write-seconds", type=float, default=5.0)
    parser.add_argument("--paced-seconds", type=float, default=5.0)
    parser.add_argument("--list-repeats", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-apiserver-") as tmp:
        cluster = SimCluster.start(Path(tmp), workers=0, disabled_controllers=list(CONTROLLERS))
        try:
            asyncio.run(run(args, cluster))
        finally:
            cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
