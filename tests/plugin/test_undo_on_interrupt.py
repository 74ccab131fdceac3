"""A disruption is undone at teardown after a failure, Ctrl-C and SIGTERM of pytest itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_k8sdr.cluster import Cluster

INNER = """
import os, signal, time
import pytest

@pytest.mark.disruptive
def test_cordon_then_{how}(node_faults, cluster):
    node_faults.cordon("k8sdr-worker2")
    assert cluster.node("k8sdr-worker2").unschedulable
    print("CORDONED", flush=True)
    how = "{how}"
    if how == "fail":
        assert False, "the system under test failed"
    if how == "interrupt":
        raise KeyboardInterrupt
    if how == "sigterm":
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)
"""


@pytest.mark.parametrize("how", ["fail", "interrupt", "sigterm", "external-sigterm"])
def test_cordon_is_undone(
    how: str, cluster: Cluster, k8sdr_backend: object, tmp_path: Path, namespace: str
) -> None:
    kubeconfig = k8sdr_backend.kubeconfig  # type: ignore[attr-defined]
    inner_how = "sleep" if how == "external-sigterm" else how
    test_file = tmp_path / "test_inner.py"
    test_file.write_text(INNER.replace("{how}", inner_how))
    if inner_how == "sleep":
        test_file.write_text(test_file.read_text() + "    time.sleep(60)\n")
    from pytest_k8sdr.config import load_kubeconfig

    _, context = load_kubeconfig([Path(kubeconfig)])
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-s",
        "-p",
        "no:cacheprovider",
        str(test_file),
        "--k8sdr-backend=kubeconfig",
        f"--k8sdr-kubeconfig={kubeconfig}",
        f"--k8sdr-allowed-contexts={context}",
        f"--rootdir={tmp_path}",
        # Its own game-day lock: this suite's session may hold the default one on this cluster.
        f"--k8sdr-lock-namespace={namespace}",
    ]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    head = ""
    if how == "external-sigterm":
        for line in proc.stdout:
            head += line
            if "CORDONED" in line:
                break
        time.sleep(0.2)
        os.kill(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    out = head + out
    assert proc.returncode != 0, out
    assert "CORDONED" in out, out  # the cordon was made: the undo below is what is tested
    node = cluster.node("k8sdr-worker2")
    assert not node.unschedulable, f"cordon not undone after {how}:\n{out}"
