"""Background tasks owned by an object that must be closed, and one clear warning if it is not.

An object left running when its event loop is closed without cancelling (``loop.close()`` after
``run_until_complete``; ``asyncio.run`` cancels everything itself) used to leave asyncio's
"Task was destroyed but it is pending!" once per task, naming a coroutine deep inside us. Tasks
made by :func:`owned_task` leave that to their owner: when an owner that was never closed is
garbage-collected with tasks still pending, :class:`TaskOwner` emits one ``ResourceWarning``
naming the object and the fix, the way aiohttp reports an unclosed session.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["TaskOwner", "owned_task"]

T = TypeVar("T")


def owned_task(owner: TaskOwner, coro: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
    """``asyncio.create_task`` for a task ``owner`` cancels on close and reports if it cannot."""
    task = asyncio.create_task(coro, name=name)
    # asyncio's own "Task was destroyed" would repeat, per task, what the owner says once;
    # the flag is the one asyncio.Task reads for that message (CPython and its C task alike)
    task._log_destroy_pending = False  # type: ignore[attr-defined]
    owner._owned_tasks.add(task)
    task.add_done_callback(owner._owned_tasks.discard)
    return task


class TaskOwner:
    """Mixin for objects whose ``aclose()`` cancels their :func:`owned_task` tasks."""

    _owned_tasks: set[asyncio.Task[Any]]

    def __init__(self) -> None:
        self._owned_tasks = set()

    def __del__(self) -> None:
        pending = [t for t in getattr(self, "_owned_tasks", ()) if not t.done()]
        if pending:
            names = ", ".join(sorted(t.get_name() for t in pending))
            warnings.warn(
                f"{type(self).__name__} was never closed and its tasks ({names}) were left "
                "pending when its event loop ended: await aclose() (or use 'async with') "
                "before the loop closes",
                ResourceWarning,
                stacklevel=1,
                source=self,
            )
