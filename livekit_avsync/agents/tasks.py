"""Task helpers of the AvatarSession: bounded cancellation and waits, failures logged."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

__all__ = ["bounded", "log_failure", "settle"]

logger = logging.getLogger("livekit_avsync")


async def settle(tasks: Iterable[asyncio.Future[Any]], timeout: float, cancel: bool = True) -> None:
    """Cancel ``tasks`` (unless ``cancel`` is False) and wait up to ``timeout`` for them to end;
    a task still running then ignores cancellation: logged and abandoned."""
    current = asyncio.current_task()
    pending = {t for t in tasks if t is not current and not t.done()}
    if not pending:
        return
    if cancel:
        for task in pending:
            task.cancel()
    _, stuck = await asyncio.wait(pending, timeout=timeout)
    if cancel:
        for task in stuck:
            name = task.get_name() if isinstance(task, asyncio.Task) else repr(task)
            logger.error("avatar task %s ignored cancellation for %g s: abandoned", name, timeout)


def log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        name = task.get_name() if isinstance(task, asyncio.Task) else "avatar task"
        logger.error("%s failed", name, exc_info=task.exception())


async def bounded(aw: Any, what: str, timeout: float) -> None:
    """Await ``aw`` for at most ``timeout``; log a failure or overrun and move on."""
    task = asyncio.ensure_future(aw)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        logger.error("%s took more than %g s: abandoned", what, timeout)
        task.cancel()
        task.add_done_callback(log_failure)
        return
    if not task.cancelled() and task.exception() is not None:
        logger.error("%s failed", what, exc_info=task.exception())
