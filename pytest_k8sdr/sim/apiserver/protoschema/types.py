"""The shapes of the schema tables (see the package docstring)."""

from __future__ import annotations

__all__ = ["Kinds", "Message", "Messages"]

Message = dict[int, tuple[str, str]]
Messages = dict[str, Message]
Kinds = dict[tuple[str, str], str]
