# -*- test-case-name: tests.test_writebehind -*-
"""The one write-behind pipeline every cmppsvc store writes through.

Stores queue Redis commands and go on; the pipeline sends them in order, as
batches, and keeps a batch until Redis has taken it. Per message a channel
writes several commands (in-flight record, Msg_Id index, event, XACK), so the
cost per command decides throughput. A batch therefore goes out as ONE command:
an EVAL of a small Lua script that runs the queued commands one by one
(``cmppsvc.redisbatch``). Each command is encoded to RESP once, when queued; a
batch is one transport write and one reply, with no Deferred per command. A side
effect is that a batch is applied atomically: Redis runs all of it or none of it.

Delivery is at least once: when a connection is lost after Redis ran a batch
but before its reply arrived, the batch is sent again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from cmppsvc.redisbatch import (
    batch_command,
    command_names,
    connection_of,
    encode_command,
    encode_commands,
    send_raw,
)
from cmppsvc.redisoutage import failure_text

#: Default flush triggers: this many commands queued, or this many seconds
#: since the first one was queued. 0 means at the end of the current reactor
#: turn: everything queued while handling one read goes out together, and
#: under load batches grow by themselves while the previous one is on the
#: wire, so waiting longer only adds latency (a store that waits for its
#: write before sending a SUBMIT pays it on every message).
MAX_BATCH = 1000
INTERVAL = 0.0

#: Default bound of the queue, in commands. Roughly 25 s of traffic at 20,000
#: messages per second with four commands each; beyond it ``queue`` raises
#: ``WriteBehindFull`` instead of growing without limit while Redis is away.
MAX_QUEUE = 2_000_000

#: Retry delays after a failed batch: first, growth factor, ceiling (seconds).
RETRY_INITIAL = 0.05
RETRY_FACTOR = 2.0
RETRY_MAX = 5.0

#: Seconds to wait for the reply of one batch before treating it as lost.
REPLY_TIMEOUT = 30.0

# What a cancelled item is replaced by: no command, so serials stay in place.
_CANCELLED = (b"", 0)


class WriteBehindFull(RuntimeError):  # noqa: N818 (reads as a state)
    """The write-behind queue reached its limit (Redis away or too slow)."""


class WriteBehind:
    """Queue of Redis commands written in order, in batches, retried until taken.

    ``queue(*arguments)`` is synchronous and cheap. A batch goes out when
    ``max_batch`` commands wait, ``interval`` seconds after the first command of
    an idle period was queued, or as soon as the previous batch is answered.
    Only one batch is on the wire at a time, which keeps the order across
    retries.
    """

    log = Logger()

    def __init__(
        self,
        redis,
        clock: IReactorTime,
        max_batch: int = MAX_BATCH,
        interval: float = INTERVAL,
        max_queue: int = MAX_QUEUE,
        reply_timeout: float = REPLY_TIMEOUT,
    ):
        self.redis = redis
        self.clock = clock
        self.max_batch = max_batch
        self.interval = interval
        self.max_queue = max_queue
        self.reply_timeout = reply_timeout

        # Each queued item: (encoded command, RESP argument count).
        self._queue = deque()
        self._batch = None
        self._timer = None
        self._retry_timer = None
        self._retry_delay = RETRY_INITIAL
        self._failures = 0
        self._queued = 0
        self._written = 0
        self._flush_waiters = deque()
        self._written_waiters = deque()
        self._collecting = False
        self._before_send = []
        self._after_write = []
        self._on_close = []
        self._sending = None
        self._closed = False

    @property
    def backlog(self) -> int:
        """Commands queued or on the wire, not yet written."""
        return self._queued - self._written

    @property
    def written(self) -> int:
        """Serial of the last command written (``queue`` returns serials)."""
        return self._written

    @property
    def healthy(self) -> bool:
        """False while batches are failing (Redis away or refusing)."""
        return self._failures == 0

    def queue(self, *arguments) -> int:
        """Queue one Redis command; returns its serial number (1, 2, ...).

        Raises ``WriteBehindFull`` when ``max_queue`` commands already wait.
        """
        if self._queued - self._written >= self.max_queue:
            raise WriteBehindFull(
                f"write-behind queue full ({self.max_queue} commands waiting): "
                "Redis is unreachable or too slow"
            )
        self._queue.append(encode_command(arguments))
        self._queued += 1
        self._schedule()
        return self._queued

    def queue_together(self, *commands: tuple | list) -> int:
        """Queue several commands as ONE item: they go out in the same batch,
        which Redis applies whole, so either all of them are written or none.

        Returns the item's serial (one serial for the whole group). Raises
        ``WriteBehindFull`` like ``queue``, and ``ValueError`` for no command.
        """
        if not commands:
            raise ValueError("queue_together needs at least one command")
        if self._queued - self._written >= self.max_queue:
            raise WriteBehindFull(
                f"write-behind queue full ({self.max_queue} commands waiting): "
                "Redis is unreachable or too slow"
            )
        self._queue.append(encode_commands(commands))
        self._queued += 1
        self._schedule()
        return self._queued

    def cancel(self, serial: int) -> bool:
        """Drop the item ``serial`` if it is still waiting in the queue (not
        taken into a batch): it will never be written. Returns True when it
        was dropped, False when it is on the wire, written, already dropped
        or unknown. Serials of the other items do not change, and the dropped
        one still counts as written once the batch it would have been in is.

        For a store whose later item makes an earlier one useless: the later
        item is queued after it, so it cannot be written before it anyway.
        """
        queue = self._queue
        index = serial - (self._queued - len(queue) + 1)
        if index < 0 or serial > self._queued or queue[index] is _CANCELLED:
            return False
        queue[index] = _CANCELLED
        return True

    def when_written(self, serial: int) -> defer.Deferred:
        """Fires once the item with ``serial`` (from ``queue``) is written.

        Unlike ``flush`` it does not hurry a batch out; it fires right after
        the batch holding that item is answered, before the next one is sent.
        """
        if self._written >= serial:
            return defer.succeed(None)
        d = defer.Deferred()
        self._written_waiters.append((serial, d))
        return d

    def add_before_send(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` just before each batch is taken from the queue,
        so a store can queue what it coalesced (status fields) at that moment."""
        self._before_send.append(callback)

    def add_after_write(self, callback: Callable[[int], None]) -> None:
        """Call ``callback(written)`` after each batch Redis took, with the
        serial of its last command."""
        self._after_write.append(callback)

    def add_on_close(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` when ``close`` is called, so a store can cancel
        its own timers."""
        self._on_close.append(callback)

    def request_send(self) -> None:
        """Ask for a batch within ``interval`` even if nothing is queued yet
        (a ``before_send`` callback has something to add)."""
        if self._timer is None and self._batch is None:
            self._timer = self.clock.callLater(self.interval, self._interval_passed)

    def flush(self) -> defer.Deferred:
        """Fires when every command queued before this call is written."""
        self._collect()
        if self._written >= self._queued:
            return defer.succeed(None)
        d = defer.Deferred()
        self._flush_waiters.append((self._queued, d))
        if self._batch is None and self._retry_timer is None:
            self._send()
        return d

    def stop(self) -> defer.Deferred:
        """Flush, then cancel the timers. Bound the wait with ``addTimeout``:
        while Redis is away it does not fire."""

        def stopped(result):
            self._cancel_timers()
            return result

        return self.flush().addBoth(stopped)

    def close(self) -> None:
        """Stop sending at once: cancel the timers and give up the batch on
        the wire. What is not written stays counted in ``backlog`` and is
        lost with the process; for a stop that cannot wait for Redis."""
        self._closed = True
        self._cancel_timers()
        for callback in self._on_close:
            callback()
        sending, self._sending = self._sending, None
        if sending is not None:
            sending.cancel()
        if self.backlog:
            self.log.warn(
                "write-behind closed with {backlog} commands not written",
                backlog=self.backlog,
            )

    def _cancel_timers(self):
        for timer in (self._timer, self._retry_timer):
            if timer is not None and timer.active():
                timer.cancel()
        self._timer = self._retry_timer = None

    def _collect(self):
        # While collecting, queueing past max_batch must not send a batch of
        # its own: the batch being taken right after is the one.
        self._collecting = True
        try:
            for callback in self._before_send:
                callback()
        finally:
            self._collecting = False

    def _schedule(self):
        if self._batch is not None or self._retry_timer is not None:
            return
        if self._closed:
            return
        if self._collecting:
            return
        if len(self._queue) >= self.max_batch:
            self._send()
        elif self._timer is None:
            self._timer = self.clock.callLater(self.interval, self._interval_passed)

    def _interval_passed(self):
        # A batch on the wire or waiting to be retried is the one to finish
        # first; its completion sends what was queued meanwhile.
        self._timer = None
        if self._batch is None and self._retry_timer is None:
            self._send()

    def _send(self, retry: bool = False):
        if self._closed:
            return
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None
        if self._batch is not None and not retry:
            # One batch on the wire at a time: its completion sends the rest.
            return
        if self._batch is None:
            self._collect()
            if not self._queue:
                return
            self._batch = self._take()

        parts, count, size = self._batch
        command = batch_command(parts, count)
        d = connection_of(self.redis)
        d.addCallback(send_raw, command)
        d.addTimeout(self.reply_timeout, self.clock)
        self._sending = d
        d.addCallbacks(self._batch_written, self._batch_failed)

    def _take(self):
        parts = []
        count = 0
        queue = self._queue
        size = min(len(queue), self.max_batch)
        for _ in range(size):
            part, arguments = queue.popleft()
            parts.append(part)
            count += arguments
        return parts, count, size

    def _batch_written(self, failed):
        self._sending = None
        self._report_failed_commands(failed)
        size = self._batch[2]
        self._batch = None
        self._written += size

        if self._failures:
            self.log.info(
                "Redis writes resumed after {failures} failed attempts, "
                "backlog={backlog}",
                failures=self._failures,
                backlog=self.backlog,
            )
        self._failures = 0
        self._retry_delay = RETRY_INITIAL

        # Callbacks may queue (or flush) again; the guard in _send keeps a
        # batch they start from being sent twice by the line at the end.
        for callback in self._after_write:
            callback(self._written)
        written_waiters = self._written_waiters
        while written_waiters and written_waiters[0][0] <= self._written:
            written_waiters.popleft()[1].callback(None)
        waiters = self._flush_waiters
        while waiters and waiters[0][0] <= self._written:
            waiters.popleft()[1].callback(None)

        if self._batch is None and (self._queue or waiters):
            self._send()

    def _report_failed_commands(self, failed):
        # failed is [index, error, index, error, ...]; a command Redis refused
        # is a bug or bad data, retrying would fail the same way.
        if not failed:
            return
        names = command_names(b"".join(self._batch[0]))
        for position in range(0, len(failed), 2):
            index, error = failed[position], failed[position + 1]
            if int(index) == 0:
                # Not an error of Redis's: writes fenced off by a lease.
                self.log.warn("{reason}", reason=error)
                continue
            index = int(index) - 1
            name = names[index][:32] if 0 <= index < len(names) else b"?"
            self.log.error(
                "Redis refused a written-behind command command={command} "
                "error={error}",
                command=name.decode("ascii", "replace"),
                error=error,
            )

    def _batch_failed(self, failure):
        self._sending = None
        if self._closed:
            return
        self._failures += 1
        if self._failures == 1:
            self.log.error(
                "Redis writes failing, retrying with backoff: {cause} "
                "backlog={backlog}",
                cause=failure_text(failure),
                backlog=self.backlog,
            )
        delay = self._retry_delay
        self._retry_delay = min(self._retry_delay * RETRY_FACTOR, RETRY_MAX)
        self._retry_timer = self.clock.callLater(delay, self._retry)

    def _retry(self):
        self._retry_timer = None
        self._send(retry=True)
