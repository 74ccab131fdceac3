"""Asyncio task helpers the simulator's components share."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

__all__ = ["cancel_all"]


async def cancel_all(tasks: list[asyncio.Task[Any]] | set[asyncio.Task[Any]]) -> None:
    """Cancel tasks and wait for them to finish."""
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
