# -*- test-case-name: tests.test_leasewrites -*-
"""A channel's writes, applied only while no other process holds its lease.

A process frozen (SIGSTOP, a paused VM) or cut off from Redis past its lease
time still has writes queued for its channels when it runs again; by then
another process may have taken a channel over and resent its parts. Every item
a channel queues through ``LeaseFencedWriter`` is prefixed with a guard that
the write-behind's batch script checks in Redis, in the same atomic run as the
writes: the item is skipped when the channel's lease names another owner. A
lease that has lapsed with nobody taking it over does not stop the writes: the
channel's outcomes are still its own.
"""

from __future__ import annotations

from typing import Any

from cmppsvc import keys
from cmppsvc.redisbatch import GUARD


class LeaseFencedWriter:
    """The write-behind queue as one channel uses it: ``queue`` and
    ``queue_together`` guard each item by the channel's lease; everything
    else is the shared writer's."""

    def __init__(self, writer: Any, channel_id: str, owner: str) -> None:
        self._writer = writer
        self._guard = (GUARD, keys.lease(channel_id), owner)

    def queue(self, *arguments) -> int:
        return self._writer.queue_together((*self._guard, 1), arguments)

    def queue_together(self, *commands: tuple | list) -> int:
        return self._writer.queue_together((*self._guard, len(commands)), *commands)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._writer, name)
