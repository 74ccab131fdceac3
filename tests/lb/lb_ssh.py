"""A real OpenSSH server on loopback and a paramiko client logged into it, for `SSHHost`."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paramiko
import pytest
from lb_helpers import wait_listening

ADDRESS = "127.88.251.1"
_SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class SSHLogin:
    """An open paramiko connection to the local sshd, and where its `sudo` stand-in logs."""

    client: paramiko.SSHClient
    sudo_log: Path


def _keygen(path: Path) -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "k8sdr-lb-test", "-f", str(path)],
        check=True,
    )
    return path


@pytest.fixture
def ssh_login(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHLogin]:
    if shutil.which("sshd") is None and not Path("/usr/sbin/sshd").exists():
        pytest.skip("openssh-server is not installed")
    root = tmp_path_factory.mktemp("sshd")
    # sshd insists on its privilege separation directory.
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    host_key = _keygen(root / "host_key")
    user_key = _keygen(root / "user_key")
    (root / "authorized_keys").write_text(user_key.with_suffix(".pub").read_text())
    bin_dir = root / "bin"
    bin_dir.mkdir()
    # No sudo on the build machines: a stand-in that records its use, then runs the rest.
    sudo = bin_dir / "sudo"
    sudo.write_text(f'#!/bin/sh\necho "$*" >> {root}/sudo.log\n[ "$1" = -n ] && shift\nexec "$@"\n')
    sudo.chmod(0o755)
    with socket.socket() as s:
        s.bind((ADDRESS, 0))
        port = s.getsockname()[1]
    config = root / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"ListenAddress {ADDRESS}",
                f"PidFile {root}/sshd.pid",
                f"AuthorizedKeysFile {root}/authorized_keys",
                "StrictModes no",
                "UsePAM no",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password",
                "PrintMotd no",
                "LogLevel ERROR",
                f"SetEnv PATH={bin_dir}:{_SYSTEM_PATH}",
                "",
            ]
        )
    )
    proc = subprocess.Popen(
        ["/usr/sbin/sshd", "-D", "-e", "-f", str(config), "-p", str(port), "-h", str(host_key)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_listening(ADDRESS, port)
        client = paramiko.SSHClient()
        client.get_host_keys().add(
            f"[{ADDRESS}]:{port}",
            "ssh-ed25519",
            paramiko.Ed25519Key.from_private_key_file(str(host_key)),
        )
        client.connect(
            ADDRESS,
            port=port,
            username="root",
            key_filename=str(user_key),
            look_for_keys=False,
            allow_agent=False,
        )
        try:
            yield SSHLogin(client, root / "sudo.log")
        finally:
            client.close()
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
