"""Config hosts: this machine, a Docker container, an SSH connection."""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import subprocess
from pathlib import Path
from typing import IO

import paramiko
import pytest
from lb_docker import container_nginx_dir, nginx_container, nginx_image
from lb_helpers import (
    Cluster,
    HAProxyServer,
    NginxServer,
    nginx_conf,
    upstream_lines,
    wait_listening,
)
from lb_ssh import SSHLogin, ssh_login

from pytest_k8sdr.lb import (
    DockerExecHost,
    HAProxyLB,
    HostRuntimeAPI,
    LBCommandFailed,
    LBConfigInvalid,
    LBToolMissing,
    LocalHost,
    NginxLB,
    SSHExecutor,
    SSHHost,
    TrafficProbe,
    assert_lb_drained,
    assert_lb_restored,
)
from pytest_k8sdr.undo import UndoStack

__all__ = ["nginx_container", "nginx_image", "ssh_login"]  # fixtures used here


def test_local_host_replaces_files_atomically_and_keeps_their_mode(tmp_path: Path) -> None:
    host = LocalHost()
    path = tmp_path / "upstream.conf"
    path.write_bytes(b"old\n")
    path.chmod(0o640)
    inode = path.stat().st_ino
    host.write_file(str(path), b"new\r\n\xff")
    assert host.read_file(str(path)) == b"new\r\n\xff"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert path.stat().st_ino != inode  # replaced by rename, not rewritten in place
    assert os.listdir(tmp_path) == ["upstream.conf"]
    host.remove_file(str(path))
    host.remove_file(str(path))  # no error when already gone
    with pytest.raises(LBCommandFailed, match="cannot write"):
        host.write_file(str(tmp_path / "missing" / "x.conf"), b"")
    with pytest.raises(LBCommandFailed, match="cannot read"):
        host.read_file(str(tmp_path / "missing.conf"))
    with pytest.raises(LBToolMissing, match="not installed on local"):
        host.run(["/nonexistent/tool"])
    result = host.run(["sh", "-c", "cat; echo err >&2; exit 3"], stdin=b"in")
    assert (result.returncode, result.stdout, result.stderr) == (3, b"in", b"err\n")
    with pytest.raises(LBCommandFailed, match="status 3: inerr"):
        result.check("local")


def _paramiko_fits(client: paramiko.SSHClient) -> SSHExecutor:
    return client  # checked by mypy: a paramiko client is an SSHExecutor as it is


class _Channel:
    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc

    def recv_exit_status(self) -> int:
        return self.proc.wait()

    def shutdown_write(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()


class _ChannelFile:
    def __init__(self, stream: IO[bytes] | None, channel: _Channel) -> None:
        assert stream is not None
        self.stream = stream
        self.channel = channel

    def read(self, size: int | None = None) -> bytes:
        return self.stream.read() if size is None else self.stream.read(size)

    def write(self, data: bytes) -> None:
        self.stream.write(data)
        self.stream.flush()

    def close(self) -> None:
        self.stream.close()
        if self.channel.proc.stdout is self.stream:
            self.channel.proc.wait()


class ShellOverPipes:
    """What an SSH server does with `exec_command`: hand the string to the user's shell."""

    def __init__(self) -> None:
        self.commands: list[str] = []

    def exec_command(
        self, command: str, bufsize: int = -1, timeout: float | None = None
    ) -> tuple[_ChannelFile, _ChannelFile, _ChannelFile]:
        self.commands.append(command)
        proc = subprocess.Popen(
            ["sh", "-c", command],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        channel = _Channel(proc)
        return (
            _ChannelFile(proc.stdin, channel),
            _ChannelFile(proc.stdout, channel),
            _ChannelFile(proc.stderr, channel),
        )


def test_ssh_host_quotes_commands_for_the_remote_shell(tmp_path: Path) -> None:
    client = ShellOverPipes()
    executor: SSHExecutor = client
    host = SSHHost(executor, name="ssh:lb-1")
    path = tmp_path / "it's a file.conf"  # a quote and spaces survive the remote shell
    path.write_bytes(b"old")
    path.chmod(0o600)
    host.write_file(str(path), b"upstream web { server 127.0.0.2:80; }\n")
    assert path.read_bytes() == b"upstream web { server 127.0.0.2:80; }\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert host.read_file(str(path)).startswith(b"upstream web")
    assert sorted(os.listdir(tmp_path)) == ["it's a file.conf"]
    host.remove_file(str(path))
    assert not path.exists()
    assert shlex.split(client.commands[-1]) == ["rm", "-f", "--", str(path)]
    with pytest.raises(LBCommandFailed, match=r"cat -- .*missing.* failed on ssh:lb-1"):
        host.read_file(str(tmp_path / "missing"))
    with pytest.raises(LBToolMissing, match="'no-such-nginx' is not installed on ssh:lb-1"):
        host.run(["no-such-nginx", "-t"])


def test_ssh_host_drives_nginx(tmp_path: Path, cluster: Cluster, undo: UndoStack) -> None:
    port = cluster.free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(nginx_conf(tmp_path, upstream_lines(cluster), f"{cluster.lb_address}:{port}"))
    lb = NginxLB(
        "web",
        config=str(conf),
        nodes=cluster.addresses,
        host=SSHHost(ShellOverPipes()),
        nginx=("nginx", "-e", str(tmp_path / "error.log")),
        undo=undo,
    )
    lb.validate()  # nginx is not running: -t and -T still work
    original = conf.read_bytes()
    with pytest.raises(LBCommandFailed, match="reload failed"):
        lb.drain("node-1")  # there is no nginx process to reload
    assert conf.read_bytes() == original
    assert {m.address for m in lb.members()} == set(cluster.addresses.values())


def test_nginx_in_a_container_through_docker_exec(
    nginx_container: str, cluster: Cluster, undo: UndoStack
) -> None:
    host = DockerExecHost(nginx_container)
    where = container_nginx_dir()
    port = cluster.free_port()
    conf = str(where / "nginx.conf")
    text = nginx_conf(where, upstream_lines(cluster), f"{cluster.lb_address}:{port}")
    host.run(["mkdir", "-p", str(where)]).check(host.name)
    host.write_file(conf, text.encode())
    nginx = ("nginx", "-e", str(where / "error.log"))
    subprocess.run(
        ["docker", "exec", "-d", nginx_container, *nginx, "-c", conf], check=True, timeout=30
    )
    wait_listening(cluster.lb_address, port)

    lb = NginxLB("web", config=conf, nodes=cluster.addresses, host=host, nginx=nginx, undo=undo)
    lb.validate()
    assert lb.name.endswith(f"on docker:{nginx_container}")
    original = host.read_file(conf)
    victim = cluster.nodes[2]
    with TrafficProbe(f"http://{cluster.lb_address}:{port}/", rate=60) as probe:
        lb.drain(victim.name)
        assert_lb_drained(lb, victim.name, probe=probe, window=0.5)
        lb.restore(victim.name)
        assert_lb_restored(lb, victim.name, probe=probe, window=0.5)
    assert host.read_file(conf) == original

    # Emptying the upstream does not validate inside the container either: nothing changes.
    lb.drain("node-1")
    lb.drain("node-2")
    before = host.read_file(conf)
    with pytest.raises(LBConfigInvalid, match="no servers are inside upstream"):
        lb.drain("node-3")
    assert host.read_file(conf) == before
    undo.unwind()
    assert host.read_file(conf) == original

    with pytest.raises(
        LBToolMissing, match=f"'haproxy' is not installed in container {nginx_container}"
    ):
        host.run(["haproxy", "-v"])
    with pytest.raises(LBCommandFailed, match="No such container"):
        DockerExecHost("k8sdr-no-such-container").read_file(conf)


def test_nginx_and_haproxy_over_a_real_ssh_connection(
    ssh_login: SSHLogin,
    nginx: NginxServer,
    haproxy: HAProxyServer,
    cluster: Cluster,
    undo: UndoStack,
) -> None:
    host = SSHHost(ssh_login.client, name="ssh:lb", sudo=True)
    lb = NginxLB(
        "web",
        config=str(nginx.conf),
        nodes=cluster.addresses,
        host=host,
        nginx=nginx.command,
        undo=undo,
    )
    lb.validate()
    original = nginx.conf.read_bytes()
    victim = cluster.nodes[0]
    with TrafficProbe(nginx.url, rate=60) as probe:
        lb.drain(victim.name)
        assert_lb_drained(lb, victim.name, probe=probe, window=0.5)
        lb.restore(victim.name)
        assert_lb_restored(lb, victim.name, probe=probe, window=0.5)
    assert nginx.conf.read_bytes() == original
    assert "-n nginx -e" in ssh_login.sudo_log.read_text()  # every command went through sudo

    if shutil.which("socat") is None:
        return
    runtime = HostRuntimeAPI(SSHHost(ssh_login.client, name="ssh:lb"), haproxy.socket)
    hap = HAProxyLB("web", runtime=runtime, nodes=cluster.addresses, undo=undo)
    hap.drain(victim.name)
    assert_lb_drained(hap, victim.name)
    undo.unwind()
    assert_lb_restored(hap, victim.name)
