"""Command templates and a bounded local command runner, shared by the drivers."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import string
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

_FORMATTER = string.Formatter()


@dataclass(frozen=True)
class Command:
    """A command template: a shell string, or an argv tuple run without a shell.

    Placeholders (`{node}`, `{address}`, ...) are filled from the machine's variables; in a
    shell string each value is shell-quoted, so a value can never become shell syntax.
    """

    template: str | tuple[str, ...]

    @property
    def is_shell(self) -> bool:
        """True when the template is a shell string."""
        return isinstance(self.template, str)

    def placeholders(self) -> set[str]:
        """The names the template refers to; ValueError when a template is malformed."""
        parts = [self.template] if isinstance(self.template, str) else list(self.template)
        names: set[str] = set()
        for part in parts:
            for _, name, spec, conversion in _FORMATTER.parse(part):
                if name is None:
                    continue
                if not name.isidentifier() or spec or conversion:
                    raise ValueError(
                        f"placeholder {{{name}}} in {part!r}: use plain {{name}} placeholders"
                    )
                names.add(name)
        return names

    def check(self, known: Iterable[str]) -> None:
        """ValueError naming any placeholder not in `known`."""
        names = set(known)
        unknown = sorted(self.placeholders() - names)
        if unknown:
            raise ValueError(
                f"unknown placeholder(s) {', '.join('{' + n + '}' for n in unknown)}; "
                f"known: {', '.join(sorted(names))}"
            )

    def render_shell(self, variables: Mapping[str, str]) -> str:
        """The command as one shell string, values quoted."""
        quoted = {k: shlex.quote(v) for k, v in variables.items()}
        if isinstance(self.template, str):
            return self.template.format_map(quoted)
        return shlex.join(part.format_map(variables) for part in self.template)

    def render_argv(self, variables: Mapping[str, str]) -> list[str]:
        """The command as an argv list (a shell string runs under `/bin/sh -c`)."""
        if isinstance(self.template, str):
            return ["/bin/sh", "-c", self.render_shell(variables)]
        return [part.format_map(variables) for part in self.template]


def command_from(value: object) -> Command:
    """A `Command` from a settings value: a string or a list of strings; ValueError otherwise."""
    if isinstance(value, Command):
        return value
    if isinstance(value, str) and value.strip():
        return Command(value)
    if isinstance(value, list | tuple) and value and all(isinstance(part, str) for part in value):
        return Command(tuple(value))
    raise ValueError(f"expected a command (a string or a list of strings), got {value!r}")


@dataclass(frozen=True)
class Completed:
    """What a command did: exit code and its output (stdout and stderr, decoded)."""

    argv: Sequence[str]
    returncode: int
    stdout: str
    stderr: str

    def tail(self, limit: int = 400) -> str:
        """The end of stderr (or stdout), for an error message."""
        text = (self.stderr.strip() or self.stdout.strip()).replace("\n", " | ")
        return text if len(text) <= limit else "..." + text[-limit:]


class CommandTimeout(Exception):
    """A local command ran past its deadline and was killed with its process group."""

    def __init__(self, argv: Sequence[str], timeout: float, output: str) -> None:
        super().__init__(f"{shlex.join(argv)} ran longer than {timeout:g}s and was killed")
        self.output = output


def run_local(
    argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None
) -> Completed:
    """Run `argv`, killing its whole process group when it outlives `timeout`.

    Raises `CommandTimeout`, or `OSError` when the program cannot be started.
    """
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        # Its own session, so a timeout kills what it started too (a shell's children).
        start_new_session=True,
        env=None if env is None else {**os.environ, **env},
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        # Grandchildren holding the pipes are dead too; this returns at once.
        stdout, stderr = proc.communicate()
        raise CommandTimeout(argv, timeout, (stderr or stdout or "").strip()) from None
    except BaseException:
        _kill_group(proc)
        proc.communicate()
        raise
    return Completed(argv, proc.returncode, stdout, stderr)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
