"""The managed nginx serves its stub_status apart from the traffic, for Prometheus' exporter."""

from __future__ import annotations

import shutil
import urllib.request
from pathlib import Path

import pytest

from pytest_k8sdr.lb.managed import ManagedNginx
from pytest_k8sdr.undo import UndoStack


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
def test_stub_status_on_its_own_port(tmp_path: Path) -> None:
    undo = UndoStack()
    with undo.context():
        managed = ManagedNginx(tmp_path, {"w1": "127.83.0.9:30080"}, undo=undo).start()
        assert managed.status_url.split("/")[2] != managed.url.split("/")[2]
        with urllib.request.urlopen(managed.status_url, timeout=2) as resp:
            text = resp.read().decode()
        assert text.startswith("Active connections:")
        assert "server accepts handled requests" in text
    assert not (tmp_path / "nginx.pid").exists()  # stopped by its undo
