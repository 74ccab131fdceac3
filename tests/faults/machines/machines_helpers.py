"""Helpers for the machine driver tests (a module name of its own: tests/ has no packages)."""

from __future__ import annotations

import json
import shlex
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

FAKENODE = Path(__file__).with_name("fakenode.py")


@dataclass
class FakeNode:
    """A stand-in machine: kubelet and containerd are `sleep` processes (see fakenode.py)."""

    state: Path

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, str(FAKENODE), str(self.state), *args]

    def shell(self, *args: str) -> str:
        return shlex.join(self.argv(*args))

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*args), capture_output=True, text=True, check=False)

    def status(self) -> dict[str, str]:
        done = self.run("status")
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))

    def systemd_commands(self) -> dict[str, str]:
        """Per-action commands acting on this fake node, as a systemd preset would."""
        return {
            "kill": self.shell("crash"),
            "stop": self.shell("crash"),
            "freeze": self.shell("systemctl", "kill", "--signal=SIGSTOP", "kubelet"),
            "thaw": self.shell("systemctl", "kill", "--signal=SIGCONT", "kubelet") + " || true",
            "stop_kubelet": self.shell("systemctl", "stop", "kubelet"),
            "start_kubelet": self.shell("systemctl", "start", "kubelet"),
            "stop_runtime": self.shell("systemctl", "stop", "containerd"),
            "start_runtime": self.shell("systemctl", "start", "containerd"),
            "kubelet_active": self.shell("systemctl", "is-active", "--quiet", "kubelet"),
            "runtime_active": self.shell("systemctl", "is-active", "--quiet", "containerd"),
        }


def alive(pid: int) -> bool:
    """True if `pid` runs (a zombie waiting for its reaper does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):  # ESRCH: it exited while being read
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def wait_dead(pid: int, timeout: float = 5.0) -> bool:
    """Whether `pid` is gone within `timeout` (a killed process exits a moment later)."""
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    return not alive(pid)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def keygen(path: Path, passphrase: str = "") -> Path:
    """A new ed25519 key pair at `path` (and `path`.pub)."""
    subprocess.run(
        [
            "ssh-keygen",
            "-q",
            "-t",
            "ed25519",
            "-N",
            passphrase,
            "-C",
            "k8sdr-test",
            "-f",
            str(path),
        ],
        check=True,
    )
    return path


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Until something accepts on 127.0.0.1:`port` (sshd has no readiness notification)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@dataclass
class Sshd:
    """A real OpenSSH server on a loopback port, with generated host and user keys."""

    root: Path
    port: int
    host_key: Path
    user_key: Path
    other_key: Path
    known_hosts: Path
    bin_dir: Path
    proc: subprocess.Popen[bytes]
    log: IO[bytes]

    @classmethod
    def start(cls, root: Path) -> Sshd:
        root.mkdir(parents=True, exist_ok=True)
        # sshd insists on its privilege separation directory.
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        host_key = keygen(root / "host_key")
        user_key = keygen(root / "user_key")
        other_key = keygen(root / "other_key")
        (root / "authorized_keys").write_text(user_key.with_suffix(".pub").read_text())
        bin_dir = root / "bin"
        bin_dir.mkdir()
        # No sudo on the build machines: a stand-in that records its use, then runs the rest.
        sudo = bin_dir / "sudo"
        sudo.write_text(
            f'#!/bin/sh\necho "$*" >> {root}/sudo.log\n[ "$1" = -n ] && shift\nexec "$@"\n'
        )
        sudo.chmod(0o755)
        port = free_port()
        config = root / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    "ListenAddress 127.0.0.1",
                    f"PidFile {root}/sshd.pid",
                    f"AuthorizedKeysFile {root}/authorized_keys",
                    "StrictModes no",
                    "UsePAM no",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin prohibit-password",
                    "AllowTcpForwarding yes",
                    "PrintMotd no",
                    "LogLevel ERROR",
                    f"SetEnv PATH={bin_dir}:/usr/local/bin:/usr/bin:/bin",
                    "",
                ]
            )
        )
        log = (root / "sshd.log").open("wb")
        proc = subprocess.Popen(
            ["/usr/sbin/sshd", "-D", "-e", "-f", str(config), "-p", str(port), "-h", str(host_key)],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        wait_for_port(port, proc)
        known_hosts = root / "known_hosts"
        known_hosts.write_text(f"[127.0.0.1]:{port} {host_key.with_suffix('.pub').read_text()}")
        return cls(root, port, host_key, user_key, other_key, known_hosts, bin_dir, proc, log)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.log.close()

    def login(self) -> dict[str, Any]:
        """Inventory keys that log into this server as root with the user key."""
        return {
            "driver": "ssh",
            "host": "127.0.0.1",
            "port": self.port,
            "user": "root",
            "key": str(self.user_key),
            "agent": False,
            "known_hosts": str(self.known_hosts),
            "preset": "none",
        }

    def authorize(self, key: Path) -> None:
        """Let `key` log in too."""
        with (self.root / "authorized_keys").open("a") as keys:
            keys.write(key.with_suffix(".pub").read_text())

    def sudo_log(self) -> str:
        path = self.root / "sudo.log"
        return path.read_text() if path.exists() else ""


REPO = Path(__file__).resolve().parents[3]
TEST_LABEL = "io.k8sdr.test=machines"


def docker(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI."""
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=False, timeout=timeout
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return done


def ensure_docker_engine(log: Path, timeout: float = 60) -> None:
    """Start dockerd when no engine answers (it is left running for later sessions)."""
    if docker("info", check=False).returncode == 0:
        return
    # Detach through a shell that exits at once: dockerd is reparented to init, so no Popen
    # object is left to be collected while the engine still runs (a ResourceWarning, which
    # the suite turns into an error).
    subprocess.run(
        [
            "sh",
            "-c",
            'dockerd --data-root /var/lib/docker >>"$1" 2>&1 </dev/null &',
            "sh",
            str(log),
        ],
        check=True,
        start_new_session=True,
        timeout=10,
    )
    deadline = time.monotonic() + timeout
    while docker("info", check=False).returncode != 0:
        if time.monotonic() > deadline:
            raise RuntimeError(f"dockerd did not answer within {timeout}s; see {log}")
        time.sleep(0.2)


def python_mounts() -> list[str]:
    """Read-only bind mounts that let a bare container run this Python environment."""
    paths = {Path("/usr"), Path(sys.prefix), Path(sys.base_prefix), REPO}
    real = Path(sys.executable).resolve()
    paths.add(real.parents[1])
    args: list[str] = []
    for path in sorted(paths):
        if any(parent in paths for parent in path.parents):
            continue  # already inside another mount
        args += ["-v", f"{path}:{path}:ro"]
    return args


def build_node_image(root: Path, tag: str = "k8sdr-test-node:machines") -> str:
    """An image from a minimal root filesystem (no registry): the host's /usr is mounted in."""
    rootfs = root / "rootfs"
    for sub in ("etc", "tmp", "run", "proc", "sys", "dev", "root", "var/tmp", "usr", "k8sdr"):
        (rootfs / sub).mkdir(parents=True, exist_ok=True)
    for link, target in (("bin", "usr/bin"), ("lib", "usr/lib"), ("lib64", "usr/lib64"),
                         ("sbin", "usr/sbin")):  # fmt: skip
        (rootfs / link).symlink_to(target)
    (rootfs / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (rootfs / "etc/group").write_text("root:x:0:\n")
    tarball = root / "rootfs.tar"
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], check=True)
    docker("import", str(tarball), tag)
    return tag


@dataclass
class KindNodes:
    """Containers that look like kind nodes: kind's names and labels, on the host network."""

    image: str
    root: Path
    created: list[str]

    def run(
        self,
        name: str,
        cluster: str,
        command: list[str],
        *,
        role: str = "worker",
        systemctl: str = "",
        mounts: tuple[Path, ...] = (),
        labels: bool = True,
    ) -> str:
        """Start a node container; `systemctl` is the body of its systemctl stand-in."""
        bin_dir = self.root / f"{name}-bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        script = bin_dir / "systemctl"
        script.write_text(f"#!/bin/sh\n{systemctl}\n")
        script.chmod(0o755)
        args = ["run", "-d", "--name", name, "--network", "host", "--label", TEST_LABEL]
        if labels:
            args += ["--label", f"io.x-k8s.kind.cluster={cluster}"]
            args += ["--label", f"io.x-k8s.kind.role={role}"]
        args += python_mounts()
        args += ["-v", f"{bin_dir}:/k8sdr/bin:ro"]
        for path in mounts:
            args += ["-v", f"{path}:{path}"]
        args += ["-e", "PATH=/k8sdr/bin:/usr/local/bin:/usr/bin:/bin", self.image, *command]
        ident = docker(*args).stdout.strip()
        self.created.append(ident)
        return ident

    def status(self, ident: str) -> str:
        return docker("inspect", "--format", "{{.State.Status}}", ident).stdout.strip()

    def remove_all(self) -> None:
        for ident in self.created:
            docker("rm", "-f", ident, check=False)
        self.created.clear()
