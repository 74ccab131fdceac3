"""The facade's TLS connections to the API server are closed when it is closed, not left to GC.

urllib3 2's PoolManager.clear() (the end of the kubernetes client's close()) only forgets its
pools; a response still held kept its pool, and the pool's idle sockets, open until the
garbage collector found them at the end of `pytest experiments/` ("Exception ignored in:
<ssl.SSLSocket ...>"). No timing here: the sockets are counted while everything is still held.
"""

from __future__ import annotations

import gc
import ssl
import threading
from pathlib import Path
from urllib.parse import urlsplit

from pytest_k8sdr import Cluster, Satisfied
from pytest_k8sdr.sim import SimCluster


def _open_sockets(port: int) -> list[ssl.SSLSocket]:
    """The TLS sockets of this process still open to the API server on `port`."""
    found = []
    for obj in gc.get_objects():
        if isinstance(obj, ssl.SSLSocket) and obj.fileno() != -1:
            try:
                peer = obj.getpeername()
            except OSError:  # its peer is gone; still an open descriptor of ours
                peer = ("", port)
            if peer[1] == port:
                found.append(obj)
    return found


def test_close_closes_the_connections_while_responses_are_still_held(tmp_path: Path) -> None:
    with SimCluster.start(tmp_path / "sim", workers=0) as sim:
        api = Cluster.from_kubeconfig(sim.kubeconfig_path)
        port = urlsplit(api.api_client.configuration.host).port
        assert port is not None
        # A raw response the caller keeps (it holds the pool that lent its connection) ...
        held = api.call(api.core.list_namespace, _preload_content=False)
        # ... a wait satisfied while its watch stream is still open ...
        api.wait(
            "namespaces",
            lambda s: Satisfied(True) if "default" in s.objects else None,
            description="the default namespace",
            timeout=30,
        )
        # ... and a watch cut from another thread, as the recorder stops.
        stopping, listed = threading.Event(), threading.Event()
        follower = threading.Thread(
            target=api.follow,
            args=("namespaces", lambda *_: None, stopping),
            kwargs={"on_listed": listed.set},
        )
        follower.start()
        assert listed.wait(timeout=30)
        api.stop_following(stopping)
        follower.join(timeout=30)
        assert not follower.is_alive()
        api.nodes()  # its connection goes back to the pool, idle
        assert _open_sockets(port), "the client holds no connection: nothing was tested"

        api.close()

        left = _open_sockets(port)
        assert left == [], f"{len(left)} TLS connection(s) left open by Cluster.close(): {left}"
        assert held.status == 200  # held to here on purpose


def test_cutting_a_watch_its_reader_has_already_ended_is_a_no_op(tmp_path: Path) -> None:
    # stop_following picks the responses, then cuts them: a reader may end its stream (and
    # give its connection back, or close it) in between; the cut must not raise then.
    from pytest_k8sdr.cluster import _cut, _end_stream

    with SimCluster.start(tmp_path / "sim", workers=0) as sim:
        api = Cluster.from_kubeconfig(sim.kubeconfig_path)
        try:
            for finish in ("released", "closed"):
                resp = api.call(
                    api.core.list_namespace, watch=True, timeout_seconds=1, _preload_content=False
                )
                if finish == "released":
                    resp.read()  # the server ends the stream after a second: put back whole
                    _end_stream(resp)
                else:
                    _end_stream(resp)  # left midway: closed
                _cut(resp)
        finally:
            api.close()
