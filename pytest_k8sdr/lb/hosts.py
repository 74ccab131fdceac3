"""Where a load balancer's files and commands live: this machine, a container, or an SSH host.

A `ConfigHost` runs a command and reads or atomically replaces a file. Three are provided:
`LocalHost` (subprocess), `DockerExecHost` (`docker exec` into a running container) and
`SSHHost` (any paramiko-like client with `exec_command`, such as the one the SSH machine driver
opens). The container and SSH hosts need a POSIX `sh`, `cat`, `cp` and `mv` on the far side.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from pytest_k8sdr.lb.errors import LBCommandFailed, LBToolMissing

# Exit codes of `sh`/`docker exec` for a program that is not there or cannot be executed.
_NOT_FOUND_CODES = (126, 127)

# Write a file atomically on the far side: a temporary sibling (a copy first, so that mode and
# owner are kept), then `mv` over the original. Invoked as `sh -c SCRIPT sh PATH`, data on stdin.
_ATOMIC_WRITE = r"""set -e
f=$1
t="$f.k8sdr-tmp.$$"
trap 'rm -f "$t"' EXIT
if [ -e "$f" ]; then cp -p "$f" "$t"; fi
cat > "$t"
mv -f "$t" "$f"
"""


@dataclass(frozen=True)
class CommandResult:
    """The outcome of one command run on a `ConfigHost`."""

    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def ok(self) -> bool:
        """Whether the command exited with status 0."""
        return self.returncode == 0

    @property
    def output(self) -> str:
        """Standard output and error together, decoded, for error messages."""
        text = (self.stdout + self.stderr).decode(errors="replace").strip()
        return text or "(no output)"

    def check(self, where: str) -> CommandResult:
        """Return self, or raise `LBCommandFailed` naming the command, `where` and its output."""
        if not self.ok:
            raise LBCommandFailed(
                f"{shlex.join(self.argv)} failed on {where} with status {self.returncode}: "
                f"{self.output}"
            )
        return self


class ConfigHost(Protocol):
    """Runs commands and edits files where a load balancer lives."""

    @property
    def name(self) -> str:
        """A short description for messages, e.g. ``local`` or ``docker:lb-1``."""
        ...

    def run(
        self, argv: Sequence[str], *, stdin: bytes | None = None, timeout: float | None = None
    ) -> CommandResult:
        """Run `argv` and return its result; `LBToolMissing` if the program is not there."""
        ...

    def read_file(self, path: str) -> bytes:
        """Return the file's bytes exactly."""
        ...

    def write_file(self, path: str, data: bytes) -> None:
        """Replace the file atomically with `data`, keeping its mode (a reader never sees half)."""
        ...

    def remove_file(self, path: str) -> None:
        """Remove the file; no error if it is not there."""
        ...


class LocalHost:
    """Commands and files on this machine."""

    name = "local"

    def run(
        self, argv: Sequence[str], *, stdin: bytes | None = None, timeout: float | None = None
    ) -> CommandResult:
        """Run `argv` as a subprocess."""
        try:
            proc = subprocess.run(
                list(argv),
                input=stdin if stdin is not None else b"",
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except FileNotFoundError as exc:
            raise LBToolMissing(f"{argv[0]!r} is not installed on {self.name}") from exc
        except subprocess.TimeoutExpired as exc:
            raise LBCommandFailed(
                f"{shlex.join(argv)} did not finish within {timeout}s on {self.name}"
            ) from exc
        return CommandResult(tuple(argv), proc.returncode, proc.stdout, proc.stderr)

    def read_file(self, path: str) -> bytes:
        """Return the file's bytes."""
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError as exc:
            raise LBCommandFailed(f"cannot read {path} on {self.name}: {exc}") from exc

    def write_file(self, path: str, data: bytes) -> None:
        """Write a temporary sibling, copy the original's mode, then `os.replace` it."""
        directory = os.path.dirname(os.path.abspath(path))
        try:
            fd, tmp = tempfile.mkstemp(prefix=".k8sdr-", dir=directory)
        except OSError as exc:
            raise LBCommandFailed(f"cannot write {path} on {self.name}: {exc}") from exc
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            if os.path.exists(path):
                st = os.stat(path)
                os.chmod(tmp, st.st_mode & 0o7777)
            os.replace(tmp, path)
        except OSError as exc:
            raise LBCommandFailed(f"cannot write {path} on {self.name}: {exc}") from exc
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def remove_file(self, path: str) -> None:
        """Remove the file if it is there."""
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise LBCommandFailed(f"cannot remove {path} on {self.name}: {exc}") from exc


class _ShellHost:
    """Files handled with `cat`/`cp`/`mv` through `run`; subclasses say how to run."""

    name = "shell"

    def run(
        self, argv: Sequence[str], *, stdin: bytes | None = None, timeout: float | None = None
    ) -> CommandResult:
        raise NotImplementedError

    def _checked(self, argv: Sequence[str], stdin: bytes | None = None) -> CommandResult:
        result = self.run(argv, stdin=stdin)
        if result.returncode in _NOT_FOUND_CODES:
            raise LBToolMissing(f"{argv[0]!r} cannot be run on {self.name}: {result.output}")
        return result.check(self.name)

    def read_file(self, path: str) -> bytes:
        """Return the file's bytes (`cat`)."""
        return self._checked(["cat", "--", path]).stdout

    def write_file(self, path: str, data: bytes) -> None:
        """Replace the file atomically (a temporary sibling, then `mv`)."""
        self._checked(["sh", "-c", _ATOMIC_WRITE, "sh", path], stdin=data)

    def remove_file(self, path: str) -> None:
        """Remove the file (`rm -f`)."""
        self._checked(["rm", "-f", "--", path])


class DockerExecHost(_ShellHost):
    """Commands and files inside a running container, through the `docker exec` CLI."""

    def __init__(self, container: str, *, docker: Sequence[str] = ("docker",)) -> None:
        self.container = container
        self.docker = tuple(docker)
        self.name = f"docker:{container}"

    def run(
        self, argv: Sequence[str], *, stdin: bytes | None = None, timeout: float | None = None
    ) -> CommandResult:
        """Run `argv` in the container (`docker exec -i`)."""
        outer = [*self.docker, "exec", "-i", self.container, *argv]
        try:
            proc = subprocess.run(
                outer,
                input=stdin if stdin is not None else b"",
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except FileNotFoundError as exc:
            raise LBToolMissing(f"{self.docker[0]!r} (the docker CLI) is not installed") from exc
        except subprocess.TimeoutExpired as exc:
            raise LBCommandFailed(
                f"{shlex.join(argv)} did not finish within {timeout}s on {self.name}"
            ) from exc
        # The engine reports it on stdout or stderr, depending on the CLI version and `-i`.
        said = proc.stdout + proc.stderr
        if proc.returncode in _NOT_FOUND_CODES and b"executable file not found" in said:
            raise LBToolMissing(f"{argv[0]!r} is not installed in container {self.container}")
        return CommandResult(tuple(argv), proc.returncode, proc.stdout, proc.stderr)


class SSHChannel(Protocol):
    """The part of a paramiko `Channel` that `SSHHost` uses."""

    def recv_exit_status(self) -> int:
        """Wait for the command to finish and return its exit status."""
        ...

    def shutdown_write(self) -> None:
        """Close the command's standard input."""
        ...


class SSHChannelFile(Protocol):
    """The part of a paramiko `ChannelFile` that `SSHHost` uses."""

    @property
    def channel(self) -> SSHChannel:
        """The channel the file belongs to."""
        ...

    def read(self, size: int | None = None) -> bytes:
        """Read until end of file."""
        ...

    def write(self, data: bytes) -> None:
        """Write to the command's standard input."""
        ...

    def close(self) -> None:
        """Close this end (the channel stays open until the command ends)."""
        ...


class SSHExecutor(Protocol):
    """A paramiko-like SSH client: `paramiko.SSHClient` satisfies it."""

    def exec_command(
        self, command: str, bufsize: int = -1, timeout: float | None = None
    ) -> tuple[SSHChannelFile, SSHChannelFile, SSHChannelFile]:
        """Start `command` on the remote host."""
        ...


class SSHHost(_ShellHost):
    """Commands and files on a remote host, through an open SSH connection.

    `sudo=True` prefixes every command with `sudo -n` (no password prompt: it must be allowed
    without one). The connection belongs to the caller, who also closes it.
    """

    def __init__(self, client: SSHExecutor, *, name: str = "ssh", sudo: bool = False) -> None:
        self.client = client
        self.name = name
        self.sudo = sudo

    def run(
        self, argv: Sequence[str], *, stdin: bytes | None = None, timeout: float | None = None
    ) -> CommandResult:
        """Run `argv` through the remote shell (quoted with `shlex.join`)."""
        full = ["sudo", "-n", *argv] if self.sudo else list(argv)
        try:
            cin, cout, cerr = self.client.exec_command(shlex.join(full), timeout=timeout)
            try:
                if stdin:
                    cin.write(stdin)
                cin.channel.shutdown_write()
                out = cout.read()
                err = cerr.read()
                status = cout.channel.recv_exit_status()
            finally:
                for f in (cin, cout, cerr):
                    f.close()
        except Exception as exc:  # paramiko's SSHException, socket errors, EOF: all transport
            raise LBCommandFailed(f"{shlex.join(argv)} failed on {self.name}: {exc}") from exc
        if status in _NOT_FOUND_CODES and b"not found" in err:
            raise LBToolMissing(f"{argv[0]!r} is not installed on {self.name}: {err.decode()}")
        return CommandResult(tuple(argv), status, out, err)
