"""No secret in any report, log, attachment or journal of a run that used an SSH key and a token.

The inner run uses an SSH machine inventory with a password, a private key and its passphrase,
and a kubeconfig bearer token; it writes JUnit XML, allure results, a DEBUG log file, the k8sdr
report directory and the journal, and its output is kept. Then every file it produced is read
and must contain none of the secrets.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from safety_helpers import attach_and_stop, free_port, inner_pytest

from pytest_k8sdr.sim import SimCluster

PASSWORD = "pw-Tr0ub4dor-7f3a9c"
PASSPHRASE = "pp-c0rrect-h0rse-91d2"

EXPERIMENT = """
import logging
import pytest

log = logging.getLogger("experiment")


@pytest.mark.disruptive
def test_ssh_machine_and_node_faults(machines, node_faults, runbook):
    log.debug("starting the game day")
    with runbook.phase("cordon"):
        node_faults.cordon("k8sdr-worker2")
    with runbook.phase("fail"):
        machines["k8sdr-worker"].kill()  # nobody listens there: the SSH connection fails
"""


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimCluster]:
    cluster = SimCluster.start(tmp_path / "sim", workers=3, profile="fast")
    try:
        yield cluster
    finally:
        attach_and_stop(cluster)


def test_no_secret_is_written_anywhere(sim: SimCluster, tmp_path: Path) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.BestAvailableEncryption(PASSPHRASE.encode()),
    ).decode()
    key_file = inputs / "id_ed25519"
    key_file.write_text(pem)
    key_file.chmod(0o600)
    # One line of the key's body: a leak of the key file's content would contain it.
    key_line = pem.splitlines()[2]
    inventory = inputs / "machines.yaml"
    inventory.write_text(
        f"""defaults:
  driver: ssh
  user: ops
  password: {PASSWORD}
  key: {key_file}
  key_passphrase: {PASSPHRASE}
  accept_unknown_host_keys_INSECURE: true
  connect_timeout: 2
nodes:
  k8sdr-worker:
    host: 127.0.0.1
    port: {free_port("127.0.0.1")}
"""
    )
    run = tmp_path / "run"
    run.mkdir()
    test_file = run / "test_experiment.py"
    test_file.write_text(EXPERIMENT)
    proc = inner_pytest(
        test_file,
        sim.kubeconfig_path,
        f"--k8sdr-machines={inventory}",
        f"--k8sdr-journal={run / 'journal.jsonl'}",
        f"--k8sdr-report-dir={run / 'reports'}",
        f"--junitxml={run / 'junit.xml'}",
        f"--alluredir={run / 'allure'}",
        f"--log-file={run / 'debug.log'}",
        "--log-file-level=DEBUG",
        "--log-level=DEBUG",
        "-rA",
        "--showlocals",
    )
    out, _ = proc.communicate(timeout=180)
    (run / "output.txt").write_text(out)
    assert proc.returncode == 1, out  # the SSH machine cannot be reached: the test errors
    assert "k8sdr-worker" in out
    produced = [p for p in run.rglob("*") if p.is_file() and p != test_file]
    names = {p.name for p in produced}
    assert {"junit.xml", "debug.log", "journal.jsonl", "output.txt"} <= names, names
    assert any(p.parent.name == "allure" for p in produced), names
    assert (run / "debug.log").stat().st_size > 0
    secrets = {
        "password": PASSWORD,
        "key passphrase": PASSPHRASE,
        "private key": key_line,
        "bearer token": sim.token,
    }
    leaks = [
        f"{what} in {path.relative_to(run)}"
        for path in produced
        for what, secret in secrets.items()
        if secret in path.read_text(errors="replace")
    ]
    assert leaks == []
    print(f"\nscanned {len(produced)} files for {len(secrets)} secrets: none found")
