"""The ssh driver: staging machines through paramiko.

Host keys are checked against known_hosts (the `known_hosts` setting, else ~/.ssh/known_hosts)
and an unknown key is refused, unless `accept_unknown_host_keys_INSECURE` is set. Every action
opens its own connection (a machine that was powered off comes back with a fresh one), through
the jump host when one is set. The connection (TCP, handshake, authentication, jump host) must
finish within `connect_timeout`, and the command within `command_timeout`: at the deadline the
session is closed (the remote command runs on a pty, so it gets SIGHUP) and a `MachineError`
raised. Power-on cannot go over SSH: `start` runs the local `power_on` command (IPMI, a cloud
CLI), and `stop`/`kill` refuse to run without one, since nothing could undo them.
"""

from __future__ import annotations

import contextlib
import logging
import shlex
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import paramiko

from pytest_k8sdr.faults.machines import presets
from pytest_k8sdr.faults.machines._commands import Command
from pytest_k8sdr.faults.machines.base import (
    Action,
    MachineBase,
    MachineError,
    MachineHealth,
    MachineState,
)
from pytest_k8sdr.faults.machines.command import api_variables, check_command, run_templated
from pytest_k8sdr.faults.machines.inventory import SshHop, SshSpec
from pytest_k8sdr.undo import UndoStack

log = logging.getLogger(__name__)

_OUTPUT_LIMIT = 64 * 1024
# Power actions end the session when they work; a dropped connection then means success.
_GOES_DOWN = frozenset({Action.STOP, Action.KILL})


class _InsecureAcceptPolicy(paramiko.MissingHostKeyPolicy):
    """Accepts any unknown host key, loudly; chosen only by `accept_unknown_host_keys_INSECURE`."""

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        log.warning(
            "accepting UNVERIFIED %s host key %s for %s (accept_unknown_host_keys_INSECURE)",
            key.get_name(),
            key.fingerprint,
            hostname,
        )


@dataclass(frozen=True)
class RemoteResult:
    """How a remote command ended: its exit status (None if the session dropped) and output."""

    status: int | None
    output: str

    def tail(self, limit: int = 400) -> str:
        """The end of the output, on one line."""
        text = self.output.strip().replace("\r", "").replace("\n", " | ")
        return text if len(text) <= limit else "..." + text[-limit:]


class _Watchdog:
    """Shuts the connection's sockets at the deadline, so no blocking step can outlive it.

    It owns the raw sockets it watches and closes them when the connection is done.
    """

    def __init__(self, timeout: float) -> None:
        self.fired = False
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(timeout, self._fire)
        self._timer.daemon = True

    def watch(self, sock: socket.socket) -> None:
        self._sockets.append(sock)
        if self.fired:
            self._fire()

    def _fire(self) -> None:
        self.fired = True
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Close the sockets (a failed login may leave one that no client owns)."""
        for sock in self._sockets:
            sock.close()

    def __enter__(self) -> _Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


class SshMachine(MachineBase):
    """A machine reached over SSH; per-action shell commands, with sudo when configured."""

    driver = "ssh"

    def __init__(self, spec: SshSpec, undo: UndoStack) -> None:
        super().__init__(spec.node, undo)
        self.spec = spec
        self.variables: Mapping[str, str] = {
            "node": spec.node,
            "host": spec.login.host,
            "address": spec.login.host,
            "user": spec.login.user or "",
            **api_variables(spec.api_server),
            **spec.vars,
        }

    def _check(self, action: Action) -> None:
        if action is Action.START:
            if self.spec.power_on is None:
                raise self.error(
                    action,
                    "power-on cannot go over SSH: set power_on, an out-of-band command"
                    " (IPMI, a cloud CLI) that starts the machine",
                    may_have_acted=False,
                )
        else:
            check_command(self, action, self.spec.commands, self.variables)

    def _act(self, action: Action) -> None:
        if action is Action.START:
            assert self.spec.power_on is not None  # checked by _check
            run_templated(
                self, action, self.spec.power_on, self.variables, self.spec.power_on_timeout
            )
            return
        with self._connect(action) as transport:
            result = self._exec(transport, action, self.spec.commands[action.value])
        if result.status is None:
            if action in _GOES_DOWN:
                log.info("ssh machine of node %r: session ended by %s", self.node, action)
                return
            raise self.error(
                action,
                f"connection dropped while the command ran; output: {result.tail() or '-'}",
            )
        if result.status != 0:
            raise self.error(
                action, f"remote command exited with {result.status}: {result.tail() or '-'}"
            )

    def describe(self, action: Action) -> str:
        """The remote command `action` runs (ssh user@host: ...), or the local power-on."""
        if action is Action.START:
            if self.spec.power_on is None:
                return super().describe(action)
            return shlex.join(self.spec.power_on.render_argv(self.variables))
        command = self.spec.commands.get(action.value)
        if command is None:
            return super().describe(action)
        login = self.spec.login
        who = f"{login.user}@{login.host}" if login.user else login.host
        return f"ssh {who}: {self._render(command)}"

    def health(self) -> MachineHealth:
        """Connects and asks whether the kubelet and the runtime are active."""
        services: dict[str, bool] = {}
        try:
            with self._connect(Action.HEALTH) as transport:
                for name, key in (
                    ("kubelet", presets.KUBELET_ACTIVE),
                    ("runtime", presets.RUNTIME_ACTIVE),
                ):
                    if key in self.spec.commands:
                        result = self._exec(transport, Action.HEALTH, self.spec.commands[key])
                        services[name] = result.status == 0
        except MachineError as exc:
            return MachineHealth(
                self.node, self.driver, MachineState.UNREACHABLE, services, exc.reason
            )
        return MachineHealth(self.node, self.driver, MachineState.RUNNING, services)

    # -- connection -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _connect(self, action: Action) -> Iterator[paramiko.Transport]:
        """An authenticated transport to the machine (through the jump host), closed after."""
        spec = self.spec
        clients: list[paramiko.SSHClient] = []
        watchdog = _Watchdog(spec.connect_timeout)
        try:
            with watchdog:
                try:
                    sock: paramiko.Channel | None = None
                    if spec.jump is not None:
                        jump = self._login(action, spec.jump, None, watchdog, clients)
                        sock = self._tunnel(action, jump)
                    client = self._login(action, spec.login, sock, watchdog, clients)
                except MachineError:
                    raise
                except (paramiko.SSHException, OSError, EOFError) as exc:
                    if watchdog.fired:
                        raise self.error(
                            action,
                            f"connecting to {self._where(spec.login)} took longer than"
                            f" connect_timeout={spec.connect_timeout:g}s",
                            may_have_acted=False,
                        ) from exc
                    raise self.error(
                        action,
                        f"SSH connection to {self._where(spec.login)} failed: {exc}",
                        may_have_acted=False,
                    ) from exc
            transport = client.get_transport()
            if transport is None or not transport.is_active():
                raise self.error(action, "SSH transport closed after login", may_have_acted=False)
            yield transport
        finally:
            for opened in reversed(clients):
                opened.close()
            watchdog.close()

    def _login(
        self,
        action: Action,
        hop: SshHop,
        sock: socket.socket | paramiko.Channel | None,
        watchdog: _Watchdog,
        clients: list[paramiko.SSHClient],
    ) -> paramiko.SSHClient:
        spec = self.spec
        where = self._where(hop)
        timeout = spec.connect_timeout
        pkey = self._load_key(action, hop)
        if sock is None:
            try:
                raw = socket.create_connection((hop.host, hop.port), timeout=timeout)
            except TimeoutError as exc:
                raise self.error(
                    action,
                    f"TCP connect to {where} timed out after {timeout:g}s",
                    may_have_acted=False,
                    transient=True,
                ) from exc
            except OSError as exc:
                raise self.error(
                    action,
                    f"cannot connect to {where}: {exc}",
                    may_have_acted=False,
                    transient=True,  # a machine powering on refuses connections for a while
                ) from exc
            watchdog.watch(raw)
            sock = raw
        client = paramiko.SSHClient()
        clients.append(client)
        client.load_system_host_keys(str(spec.known_hosts) if spec.known_hosts else None)
        client.set_missing_host_key_policy(
            _InsecureAcceptPolicy()
            if spec.accept_unknown_host_keys_INSECURE
            else paramiko.RejectPolicy()
        )
        try:
            client.connect(
                hop.host,
                port=hop.port,
                username=hop.user,
                pkey=pkey,
                password=hop.password.reveal() if hop.password else None,
                allow_agent=hop.agent,
                look_for_keys=False,
                timeout=timeout,
                banner_timeout=timeout,
                auth_timeout=timeout,
                channel_timeout=timeout,
                sock=sock,
            )
        except paramiko.BadHostKeyException as exc:
            raise self.error(
                action,
                f"host key of {where} does not match known_hosts ({exc.key.get_name()}"
                f" {exc.key.fingerprint}): refusing to connect",
                may_have_acted=False,
            ) from exc
        except paramiko.AuthenticationException as exc:
            raise self.error(
                action,
                f"authentication as {hop.user or 'the local user'} on {where} failed: {exc}",
                may_have_acted=False,
            ) from exc
        except paramiko.SSHException as exc:
            if "not found in known_hosts" in str(exc):
                known = spec.known_hosts or "~/.ssh/known_hosts"
                raise self.error(
                    action,
                    f"unknown host key for {where}: not in {known}; check the key and add"
                    " it there (accept_unknown_host_keys_INSECURE skips the check)",
                    may_have_acted=False,
                ) from exc
            if "No authentication methods" in str(exc):
                raise self.error(
                    action,
                    f"no way to log in as {hop.user or 'the local user'} on {where}:"
                    " set key, password or agent",
                    may_have_acted=False,
                ) from exc
            raise
        return client

    def _load_key(self, action: Action, hop: SshHop) -> paramiko.PKey | None:
        """The hop's private key, read before connecting so a bad key is named as such."""
        if hop.key is None:
            return None
        passphrase = hop.key_passphrase.reveal() if hop.key_passphrase else None
        try:
            # paramiko hands the password to cryptography, which wants bytes (the stub says str).
            secret = passphrase.encode() if passphrase else None
            return paramiko.PKey.from_path(hop.key, secret)  # type: ignore[arg-type]
        except (paramiko.SSHException, OSError, ValueError, TypeError) as exc:
            if passphrase is None and (
                isinstance(exc, paramiko.PasswordRequiredException) or "password" in str(exc)
            ):
                reason = f"key {hop.key} is encrypted: set key_passphrase"
            else:
                hint = " (wrong key_passphrase?)" if passphrase else ""
                reason = f"cannot load key {hop.key}{hint}: {exc}"
            raise self.error(action, reason, may_have_acted=False) from exc

    def _tunnel(self, action: Action, jump: paramiko.SSHClient) -> paramiko.Channel:
        transport = jump.get_transport()
        assert transport is not None  # connected just now
        target = (self.spec.login.host, self.spec.login.port)
        try:
            return transport.open_channel(
                "direct-tcpip", target, ("127.0.0.1", 0), timeout=self.spec.connect_timeout
            )
        except paramiko.ChannelException as exc:
            raise self.error(
                action,
                f"jump host {self._where(self.spec.jump)} cannot reach"
                f" {self._where(self.spec.login)}: {exc}",
                may_have_acted=False,
            ) from exc

    def _where(self, hop: SshHop | None) -> str:
        assert hop is not None
        return f"{hop.host}:{hop.port}"

    # -- commands ---------------------------------------------------------------------------

    def _render(self, command: Command) -> str:
        text = command.render_shell(self.variables)
        if self.spec.sudo:
            # -n: fail at once rather than wait for a password prompt nobody answers.
            text = f"sudo -n sh -c {shlex.quote(text)}"
        return text

    def _exec(
        self, transport: paramiko.Transport, action: Action, command: Command
    ) -> RemoteResult:
        """Run `command`; at `command_timeout` the session is closed and MachineError raised."""
        timeout = self.spec.command_timeout
        deadline = time.monotonic() + timeout
        text = self._render(command)
        try:
            channel = transport.open_session(timeout=timeout)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise self.error(
                action, f"cannot open an SSH session: {exc}", may_have_acted=False
            ) from exc
        output = bytearray()
        try:
            # A pty: when we abandon the command, sshd hangs it up instead of leaving it running.
            channel.get_pty()
            channel.exec_command(text)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                channel.settimeout(remaining)
                chunk = channel.recv(32768)
                if not chunk:
                    break
                output += chunk
                del output[:-_OUTPUT_LIMIT]
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not channel.status_event.wait(remaining):
                raise TimeoutError
        except TimeoutError:
            channel.close()
            raise self.error(
                action,
                f"remote command ran longer than command_timeout={timeout:g}s and was"
                f" abandoned: {text!r}; output: {_tail(output) or '-'}",
            ) from None
        except (paramiko.SSHException, OSError, EOFError):
            return RemoteResult(None, output.decode(errors="replace"))
        finally:
            channel.close()
        decoded = output.decode(errors="replace")
        status = channel.exit_status
        if status == -1:
            if transport.is_active():
                # No exit status on a live connection: the command was killed by a signal.
                return RemoteResult(255, decoded + " (killed by a signal)")
            return RemoteResult(None, decoded)
        return RemoteResult(status, decoded)


def _tail(output: bytes | bytearray) -> str:
    return RemoteResult(0, bytes(output).decode(errors="replace")).tail()
