"""nginx as the external load balancer: drain and restore a node's servers in an `upstream` block.

Every change is checked with `nginx -t` before it replaces the file and `nginx -s reload` makes
nginx read it; a change that does not validate raises `LBConfigInvalid` and leaves the file
byte-for-byte as it was. What nginx routes to is read back from `nginx -T`, never from our own
bookkeeping.

A drained server line keeps its original text after a marker, so `restore` (or an undo from
another process, e.g. `k8sdr recover`) puts back the exact original bytes:

- ``mode="comment"``: ``server 10.0.0.7:30080 weight=2;`` becomes
  ``#k8sdr-drained# server 10.0.0.7:30080 weight=2;``
- ``mode="down"``: it becomes
  ``server 10.0.0.7:30080 weight=2 down; #k8sdr-drained:down# server 10.0.0.7:30080 weight=2;``

Each server directive must sit on a line of its own (a trailing comment is fine). When the
upstream lives in a file included by the main configuration (`file` differs from `config`),
`nginx -t` can only read the candidate in place: the file holds it while the test runs and gets
its original bytes back if the test fails; nginx itself never loads it, as it is not reloaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pytest_k8sdr.lb.base import (
    Drained,
    JournaledDrains,
    Member,
    NodeAddresses,
    host_from_record,
    host_record,
    node_of,
    split_host_port,
)
from pytest_k8sdr.lb.errors import (
    LBCommandFailed,
    LBConfigError,
    LBConfigInvalid,
    LBToolMissing,
    NodeNotInLB,
    UpstreamNotFound,
)
from pytest_k8sdr.lb.hosts import CommandResult, ConfigHost, LocalHost
from pytest_k8sdr.undo import UndoEnv, UndoStack, disruption_kind

DrainMode = Literal["comment", "down"]

_MARK_COMMENT = "#k8sdr-drained# "
_MARK_DOWN = " #k8sdr-drained:down# "
_CHECK_SUFFIX = ".k8sdr-check"


class NginxLB(JournaledDrains):
    """Drain and restore nodes in the `upstream` block `upstream` of an nginx configuration.

    `config` is the main configuration (passed as ``-c``; None lets nginx use its built-in
    path, and then `file` is required); `file` is the file holding the upstream block
    (default: `config`). `nginx` is the command, with any options every call needs, e.g.
    ``("nginx", "-p", prefix, "-g", "pid /tmp/x/nginx.pid;")``. `host` says where files and
    commands live. `undo` receives the undo of every drain before the change is made (a private
    stack when None, reachable as `.undo`). `timeout` bounds each nginx command.
    """

    def __init__(
        self,
        upstream: str,
        *,
        config: str | None,
        file: str | None = None,
        nodes: NodeAddresses | None = None,
        host: ConfigHost | None = None,
        nginx: Sequence[str] = ("nginx",),
        mode: DrainMode = "comment",
        undo: UndoStack | None = None,
        timeout: float = 30.0,
    ) -> None:
        if mode not in ("comment", "down"):
            raise LBConfigError(f"nginx drain mode must be 'comment' or 'down', not {mode!r}")
        path = file if file is not None else config
        if path is None:
            raise LBConfigError("NginxLB needs `config` or `file`: which file holds the upstream")
        self.upstream = upstream
        self.config = config
        self.file = path
        super().__init__(nodes, undo)
        self.host: ConfigHost = host if host is not None else LocalHost()
        self.nginx = tuple(nginx)
        self.mode: DrainMode = mode
        self.timeout = timeout

    @property
    def name(self) -> str:
        """``nginx upstream NAME in FILE on HOST``."""
        return f"nginx upstream {self.upstream!r} in {self.file} on {self.host.name}"

    # -- reading -------------------------------------------------------------------------

    def members(self) -> list[Member]:
        """The upstream's servers as nginx reads its configuration (`nginx -T`)."""
        result = self._run("-T")
        if not result.ok:
            raise LBConfigInvalid(f"nginx -T failed on {self.host.name}: {result.output}")
        dump = result.stdout.decode(errors="surrogateescape")
        block = _find_upstream(dump, self.upstream)
        if block is None:
            raise UpstreamNotFound(
                f"nginx on {self.host.name} has no upstream {self.upstream!r}"
                f"{_known_upstreams(dump)}"
            )
        return [_member(s) for s in block.servers]

    def validate(self) -> None:
        """Check nginx is installed, the configuration valid and the upstream in `file`."""
        result = self._run("-t")
        if not result.ok:
            raise LBConfigInvalid(f"nginx -t fails on {self.host.name}: {result.output}")
        self.members()
        self._read_block()

    # -- changing ------------------------------------------------------------------------

    def drain(self, node: str) -> None:
        """Comment out (or mark `down`) every server at the node's address, then reload."""
        address = self.address_of(node)
        with self._lock:
            original, block = self._read_block()
            targets = [s for s in block.servers if _host(s) == address]
            drained = _drained_lines(original, block, address)
            if not targets and not drained:
                raise NodeNotInLB(
                    f"node {node!r} ({address}) is in no server of {self.name}; "
                    f"servers: {', '.join(s.args[0] for s in block.servers) or 'none'}"
                )
            active = [s for s in targets if "down" not in s.args[1:]]
            if not active:
                return  # already drained (by us, or marked down by its operator)
            new = _drain_text(original, active, self.mode)
            # nginx must be there and the current configuration valid before anything is
            # registered or touched: a broken configuration is the operator's, not ours.
            current = self._run("-t")
            if not current.ok:
                raise LBConfigInvalid(
                    f"nginx -t fails on {self.host.name} before any change: {current.output}"
                )
            self._register_drain(
                address,
                NginxDrain(
                    address=address,
                    upstream=self.upstream,
                    config=self.config,
                    file=self.file,
                    nginx=list(self.nginx),
                    host=host_record(self.host),
                    node=node_of(node),
                ),
                {self.host.name: self.host},
            )
            self._apply(original, new, f"drain {node} ({address})")

    def restore(self, node: str) -> None:
        """Put back the exact original server lines of the node, then reload."""
        address = self.address_of(node)
        with self._lock:
            if self._undo_drain(address):
                return
            text, block = self._read_block()
            if not any(_host(s) == address for s in block.servers) and not _drained_lines(
                text, block, address
            ):
                raise NodeNotInLB(f"node {node!r} ({address}) is in no server of {self.name}")
            self._restore_address(address)

    def _restore_address(self, address: str) -> None:
        """Unmark the drained lines of `address`; a no-op when there are none (idempotent)."""
        with self._lock:
            original, block = self._read_block()
            lines = _drained_lines(original, block, address)
            if not lines:
                return
            new = original
            for start, end, restored in reversed(lines):
                new = new[:start] + restored + new[end:]
            self._apply(original, new, f"restore {address}", keep_if_reload_fails=True)

    # -- plumbing ------------------------------------------------------------------------

    def _run(self, *args: str) -> CommandResult:
        argv = [*self.nginx, *(("-c", self.config) if self.config else ()), *args]
        result = self.host.run(argv, timeout=self.timeout)
        if result.returncode in (126, 127):
            raise LBToolMissing(f"{self.nginx[0]!r} cannot be run on {self.host.name}")
        return result

    def _read_block(self) -> tuple[str, _Upstream]:
        text = self.host.read_file(self.file).decode(errors="surrogateescape")
        block = _find_upstream(text, self.upstream)
        if block is None:
            raise UpstreamNotFound(
                f"{self.file} on {self.host.name} has no upstream {self.upstream!r}"
                f"{_known_upstreams(text)}"
            )
        return text, block

    def _apply(
        self, original: str, new: str, what: str, *, keep_if_reload_fails: bool = False
    ) -> None:
        """Validate `new` with `nginx -t`, then replace the file and reload nginx.

        When the reload fails, a drain puts the file back (nothing changed); a restore keeps
        the restored file, so that nginx serves the node once it runs again.
        """
        old_bytes = original.encode(errors="surrogateescape")
        new_bytes = new.encode(errors="surrogateescape")
        if self.config is None or self.file == self.config:
            self._check_copy(new_bytes, what)
            self.host.write_file(self.file, new_bytes)
        else:
            self._check_in_place(old_bytes, new_bytes, what)
        reload = self._run("-s", "reload")
        if not reload.ok:
            if keep_if_reload_fails:
                state = "the file is restored, nginx did not reload it"
            else:
                self.host.write_file(self.file, old_bytes)
                state = "file put back as it was"
            raise LBCommandFailed(
                f"{what}: nginx -s reload failed on {self.host.name} ({state}): {reload.output}"
            )
        self._changed(what)

    def _check_copy(self, data: bytes, what: str) -> None:
        # A sibling of the main file: relative includes resolve as they do for the original.
        candidate = self.file + _CHECK_SUFFIX
        self.host.write_file(candidate, data)
        try:
            argv = [*self.nginx, "-c", candidate, "-t"]
            result = self.host.run(argv, timeout=self.timeout)
        finally:
            self.host.remove_file(candidate)
        if result.returncode in (126, 127):
            raise LBToolMissing(f"{self.nginx[0]!r} cannot be run on {self.host.name}")
        if not result.ok:
            raise LBConfigInvalid(
                f"{what} in {self.name}: the changed configuration does not validate, "
                f"nothing was changed: {result.output}"
            )

    def _check_in_place(self, old: bytes, new: bytes, what: str) -> None:
        self.host.write_file(self.file, new)
        try:
            result = self._run("-t")
        except BaseException:
            self.host.write_file(self.file, old)
            raise
        if not result.ok:
            self.host.write_file(self.file, old)
            raise LBConfigInvalid(
                f"{what} in {self.name}: the changed configuration does not validate, "
                f"the file was put back as it was: {result.output}"
            )


@disruption_kind
@dataclass(frozen=True)
class NginxDrain(Drained):
    """An address drained from an nginx upstream; undone by restoring its original lines.

    Whatever the drain mode, the drained lines keep their original text after a marker, so the
    undo needs only where the file is and how to run nginx there.
    """

    kind = "nginx-drain"
    address: str
    upstream: str
    config: str | None
    file: str
    nginx: list[str]
    host: dict[str, Any]
    node: str | None = None

    def pool(self) -> str:
        """``nginx upstream 'UPSTREAM' in FILE``."""
        return f"nginx upstream {self.upstream!r} in {self.file}"

    def undo(self, env: UndoEnv) -> None:
        """Unmark the address's drained lines, validate, reload (a no-op when none is left)."""
        lb = NginxLB(
            self.upstream,
            config=self.config,
            file=self.file,
            host=host_from_record(self.host, env.connections),
            nginx=tuple(self.nginx),
        )
        lb._restore_address(self.address)


# -- parsing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class _Server:
    args: tuple[str, ...]
    start: int  # offset of the `server` keyword
    semicolon: int  # offset of the terminating `;`


@dataclass(frozen=True)
class _Upstream:
    body_start: int  # just after `{`
    body_end: int  # offset of the closing `}`
    servers: tuple[_Server, ...]


def _tokenize(text: str) -> list[_Token]:
    """Split nginx configuration into words, quoted strings, `;`, `{` and `}` (no comments)."""
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c == "#":
            nl = text.find("\n", i)
            i = n if nl < 0 else nl
        elif c in ";{}":
            tokens.append(_Token(c, i, i + 1))
            i += 1
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            tokens.append(_Token(text[i + 1 : j], i, min(j + 1, n)))
            i = j + 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in ";{}":
                j += 1
            tokens.append(_Token(text[i:j], i, j))
            i = j
    return tokens


def _find_upstream(text: str, name: str) -> _Upstream | None:
    tokens = _tokenize(text)
    for k in range(len(tokens) - 2):
        if (
            tokens[k].text == "upstream"
            and tokens[k + 1].text == name
            and tokens[k + 2].text == "{"
        ):
            return _parse_block(tokens, k + 2)
    return None


def _parse_block(tokens: list[_Token], open_index: int) -> _Upstream:
    servers: list[_Server] = []
    depth = 0
    directive: list[_Token] = []
    for tok in tokens[open_index + 1 :]:
        if tok.text == "{":
            depth += 1
        elif tok.text == "}":
            if depth == 0:
                return _Upstream(tokens[open_index].end, tok.start, tuple(servers))
            depth -= 1
            directive = []
        elif tok.text == ";":
            if depth == 0 and directive and directive[0].text == "server" and len(directive) > 1:
                servers.append(
                    _Server(tuple(t.text for t in directive[1:]), directive[0].start, tok.start)
                )
            directive = []
        else:
            directive.append(tok)
    raise LBConfigError("unbalanced braces in the nginx configuration: an upstream is not closed")


def _known_upstreams(text: str) -> str:
    tokens = _tokenize(text)
    names = [
        tokens[k + 1].text
        for k in range(len(tokens) - 2)
        if tokens[k].text == "upstream" and tokens[k + 2].text == "{"
    ]
    return f" (upstreams there: {', '.join(names)})" if names else " (it has no upstream block)"


def _host(server: _Server) -> str:
    return split_host_port(server.args[0], 80)[0]


def _member(server: _Server) -> Member:
    host, port = split_host_port(server.args[0], 80)
    down = "down" in server.args[1:]
    return Member(server.args[0], host, port, not down, "down" if down else "up")


def _line_bounds(text: str, server: _Server) -> tuple[int, int]:
    """The server's whole line (without its newline); it must hold nothing else."""
    start = text.rfind("\n", 0, server.start) + 1
    end = text.find("\n", server.semicolon)
    end = len(text) if end < 0 else end
    before = text[start : server.start]
    after = text[server.semicolon + 1 : end].strip()
    if before.strip() or (after and not after.startswith("#")) or "\n" in text[start:end]:
        raise LBConfigError(
            f"cannot edit `server {' '.join(server.args)};`: a server directive must sit on a "
            "line of its own (a trailing comment is fine)"
        )
    return start, end


def _drain_text(text: str, servers: Sequence[_Server], mode: DrainMode) -> str:
    for server in sorted(servers, key=lambda s: s.start, reverse=True):
        start, end = _line_bounds(text, server)
        indent, body = text[start : server.start], text[server.start : end]
        if mode == "comment":
            line = f"{indent}{_MARK_COMMENT}{body}"
        else:
            directive = text[server.start : server.semicolon].rstrip()
            line = f"{indent}{directive} down;{_MARK_DOWN}{body}"
        text = text[:start] + line + text[end:]
    return text


def _drained_lines(text: str, block: _Upstream, address: str) -> list[tuple[int, int, str]]:
    """Lines of the block we drained for `address`: (start, end, original line), in order."""
    found: list[tuple[int, int, str]] = []
    pos = text.rfind("\n", 0, block.body_start) + 1
    while pos < block.body_end:
        end = text.find("\n", pos)
        end = len(text) if end < 0 else end
        line = text[pos:end]
        stripped = line.lstrip()
        indent = line[: len(line) - len(stripped)]
        original: str | None = None
        if stripped.startswith(_MARK_COMMENT):
            original = stripped[len(_MARK_COMMENT) :]
        elif _MARK_DOWN in line:
            original = line.split(_MARK_DOWN, 1)[1]
        if original is not None:
            words = _tokenize(original)
            is_server = len(words) > 1 and words[0].text == "server"
            if is_server and split_host_port(words[1].text, 80)[0] == address:
                found.append((pos, end, indent + original))
        pos = end + 1
    return found
