# -*- test-case-name: tests.test_mtqueue -*-
"""The MT consumer: one reader per process for the streams of all its channels.

Producers add messages to ``cmppsvc:mt:<channel>``; every process reads them in
the consumer group ``cmppsvc`` under its own consumer name. One blocking
XREADGROUP over all channel streams, on a connection of its own, serves every
channel, so a thousand channels need one connection, not a thousand.

A channel is read only while its ``capacity()`` is positive, and never for more
entries than that. XREADGROUP has one COUNT for all the streams it names, so
channels are grouped by capacity rounded down to a power of two: one read per
group, at most about ten. When a sweep of non-blocking reads finds nothing, one
blocking read over every readable stream (with the smallest COUNT) waits for
new entries.

An entry is acknowledged (XACK) through the write-behind queue, behind the
outcome events queued before it, so an entry is never acknowledged before its
outcome is written. Acknowledged entries are trimmed from the streams every
``TRIM_INTERVAL`` seconds (``cmppsvc.mttrim``): producers need not (and must
not) trim them.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import txredisapi
from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from cmppsvc import keys
from cmppsvc.mtentries import (
    MAX_ENTRY_BYTES,
    Entry,
    EntryId,
    decode_entry,
    done_commands,
    reader_connection,
)
from cmppsvc.mttrim import trim_stream
from cmppsvc.redisconn import reply_text
from cmppsvc.redisoutage import failure_text, is_transient
from cmppsvc.writebehind import WriteBehind

__all__ = [
    "MAX_ENTRY_BYTES",
    "MTReader",
    "decode_entry",
    "done_commands",
    "reader_connection",
]

#: Seconds between two trims of the finished entries of every stream.
TRIM_INTERVAL = 10.0

#: Pause when no channel can take entries, unless ``wake()`` is called first.
IDLE_INTERVAL = 0.1

#: Reading pauses while the write-behind queue holds more than this many
#: commands (Redis is slow or away: do not take work whose outcome cannot be
#: written).
MAX_WRITER_BACKLOG = 100_000

#: Retry delays after a failed read: first, ceiling (seconds).
RETRY_INITIAL = 0.1
RETRY_MAX = 5.0

#: Most XPENDING/XCLAIM rounds of one ``claim_stale`` call.
CLAIM_ROUNDS = 10


@attrs.define
class _Channel:
    channel_id: str
    key: str
    deliver: Callable[[list[Entry]], None]
    capacity: Callable[[], int]
    reject: Callable[[EntryId, str, str], None] | None
    pending_done: Callable[[], None] | None = None
    group_ready: bool = False
    # "0"-based cursor through this consumer's own pending entries, then ">".
    cursor: str = "0"
    # Entries claimed while the pending entries are still being re-read: the
    # re-read must not deliver them a second time.
    claimed: set = attrs.Factory(set)


def _power_of_two_floor(value: int) -> int:
    return 1 << (value.bit_length() - 1)


class MTReader:
    """Reads the MT streams of many channels and hands entries to them."""

    log = Logger()

    def __init__(
        self,
        redis_factory_or_connection,
        writer: WriteBehind,
        consumer_name: str,
        clock: IReactorTime,
        count: int = 500,
        block_ms: int = 1000,
        max_entry_bytes: int = MAX_ENTRY_BYTES,
    ):
        if callable(redis_factory_or_connection):
            self._connect = redis_factory_or_connection
            self._owned = True
        else:
            self._connect = lambda: defer.succeed(redis_factory_or_connection)
            self._owned = False
        self.writer = writer
        self.consumer_name = consumer_name
        self.clock = clock
        self.count = count
        self.block_ms = block_ms
        self.max_entry_bytes = max_entry_bytes

        self.connection = None
        self._connecting = None
        self._connect_waiters = []
        self._channels = {}
        self._running = False
        self._stopped = False
        self._loop_done = None
        self._wake = None
        self._failures = 0
        self._trimming = task.LoopingCall(self.trim)
        # Channels whose last trim failed for a cause that does not pass.
        self._trim_failing: dict[str, bool] = {}
        self._trimming.clock = clock

    # -- channels --------------------------------------------------------------

    def add_channel(
        self,
        channel_id: str,
        deliver: Callable[[list[Entry]], None],
        capacity: Callable[[], int],
        reject: Callable[[EntryId, str, str], None] | None = None,
        pending_done: Callable[[], None] | None = None,
    ) -> None:
        """Read the MT stream of ``channel_id``.

        ``deliver(entries)`` receives [(entry id, {field: text}), ...], never
        more than ``capacity()`` at a time; this consumer's own pending entries
        (from before a restart) come first. ``reject(entry id, reason,
        message id)`` receives bad entries (not UTF-8, too large) with the
        caller's `id`, or the entry id when it had no readable one; without it
        they are logged and acknowledged. ``pending_done()`` is called once
        every pending entry has been handed over (the restart recovery resolves
        what is left then).
        """
        self._channels[channel_id] = _Channel(
            channel_id,
            keys.mt_stream(channel_id),
            deliver,
            capacity,
            reject,
            pending_done,
        )
        self.wake()

    def remove_channel(self, channel_id: str) -> None:
        """Stop reading ``channel_id``'s stream (a read in progress may still
        deliver to it once)."""
        self._channels.pop(channel_id, None)

    def ack(self, channel_id: str, entry_ids: list[EntryId]) -> None:
        """Acknowledge entries, written behind after everything queued before."""
        if entry_ids:
            self.writer.queue_together(*done_commands(channel_id, entry_ids))

    def wake(self) -> None:
        """Read now rather than after the idle pause (a channel has room)."""
        if self._wake is not None and not self._wake.called:
            self._wake.callback(None)

    # -- life cycle ------------------------------------------------------------

    def start(self) -> None:
        """Start reading: first each channel's own pending entries, then new."""
        self._running = True
        self._stopped = False
        self._loop_done = self._loop()
        if not self._trimming.running:
            self._trimming.start(TRIM_INTERVAL, now=False)

    def stop(self) -> defer.Deferred:
        """Stop reading; fires when the read loop has ended (at most about
        ``block_ms`` later unless the reader owns its connection)."""
        self._running = False
        self._stopped = True
        self.wake()
        if self._trimming.running:
            self._trimming.stop()
        done = self._loop_done or defer.succeed(None)
        if self._owned and self.connection is not None:
            connection, self.connection = self.connection, None
            done.addBoth(lambda _: None)
            return defer.gatherResults([done, connection.disconnect()]).addCallback(
                lambda _: None
            )
        return done

    def trim(self) -> defer.Deferred:
        """Trim the finished entries of every channel's stream now; also done
        every ``TRIM_INTERVAL`` while reading (a run waits for the last one)."""
        trims = []
        for channel_id in list(self._channels):
            try:
                trimmed = trim_stream(self.writer.redis, channel_id)
            except Exception:
                trimmed = defer.fail()
            trimmed.addCallbacks(
                self._trimmed,
                self._trim_failed,
                callbackArgs=(channel_id,),
                errbackArgs=(channel_id,),
            )
            trims.append(trimmed)
        return defer.gatherResults(trims)

    def _trimmed(self, _count, channel_id: str) -> None:
        if self._trim_failing.pop(channel_id, None):
            self.log.info(
                "MT stream trimmed again channel={channel}", channel=channel_id
            )

    def _trim_failed(self, failure, channel_id: str) -> None:
        # Only memory is at stake, and the next trim catches up; an outage is
        # logged where it stops work. Any other failure (an ACL, an old Redis
        # without XTRIM MINID) would let the stream grow: said once.
        if is_transient(failure) or channel_id in self._trim_failing:
            return
        self._trim_failing[channel_id] = True
        self.log.warn(
            "MT stream cannot be trimmed, it grows channel={channel}: {cause}",
            channel=channel_id,
            cause=failure_text(failure),
        )

    @defer.inlineCallbacks
    def claim_stale(self, channel_id: str, min_idle_ms: int):
        """Take over entries other consumers left pending longer than
        ``min_idle_ms`` and deliver them, within capacity.

        Lists them with XPENDING (this consumer's own entries are skipped: they
        are being worked on here) and takes them with XCLAIM. Fires with the
        number of entries delivered or rejected.
        """
        channel = self._channels[channel_id]
        connection = yield self._connection()
        start = "-"
        handled = 0
        for _round in range(CLAIM_ROUNDS):
            room = min(self.count, channel.capacity())
            if room <= 0:
                break
            pending = yield connection.execute_command(
                "XPENDING",
                channel.key,
                keys.MT_GROUP,
                "IDLE",
                min_idle_ms,
                start,
                "+",
                room,
            )
            if not pending:
                break
            start = "(" + reply_text(pending[-1][0])
            stale = [
                reply_text(item[0])
                for item in pending
                if reply_text(item[1]) != self.consumer_name
            ]
            if not stale:
                continue
            entries = yield connection.execute_command(
                "XCLAIM",
                channel.key,
                keys.MT_GROUP,
                self.consumer_name,
                min_idle_ms,
                *stale,
            )
            if channel.cursor != ">":
                channel.claimed.update(reply_text(item[0]) for item in entries)
            handled += self._hand_over(channel, entries)
        return handled

    # -- reading ---------------------------------------------------------------

    def _connection(self) -> defer.Deferred:
        # one connection attempt shared by every caller (the loop and
        # claim_stale may ask at the same time)
        if self.connection is not None:
            return defer.succeed(self.connection)
        waiter = defer.Deferred()
        self._connect_waiters.append(waiter)
        if self._connecting is None:
            # The waiter is registered first: a factory that answers at once
            # (a lazy connection) fires the waiters before this returns.
            self._connecting = defer.maybeDeferred(self._connect)
            self._connecting.addBoth(self._connected)
        return waiter

    def _connected(self, result):
        self._connecting = None
        if not isinstance(result, defer.Failure):
            if self._stopped and self._owned:
                # stop() came while connecting: nobody will use or close it
                result.disconnect()
                result = defer.Failure(defer.CancelledError("MT reader stopped"))
            else:
                self.connection = result
        waiters, self._connect_waiters = self._connect_waiters, []
        for waiter in waiters:
            if isinstance(result, defer.Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)
        return None

    @defer.inlineCallbacks
    def _loop(self):
        while self._running:
            try:
                delivered = yield self._round()
            except Exception:
                failure = defer.Failure()
                if not self._running:
                    break
                yield self._recover(failure)
                continue

            if self._failures:
                self.log.info("MT reader reading again after Redis trouble")
                self._failures = 0
            if delivered is None:
                yield self._idle()

    def _idle(self) -> defer.Deferred:
        self._wake = defer.Deferred()
        timer = self.clock.callLater(IDLE_INTERVAL, self.wake)
        self._wake.addBoth(lambda _: timer.active() and timer.cancel())
        return self._wake

    @defer.inlineCallbacks
    def _recover(self, failure):
        self._failures += 1
        if self._failures == 1:
            self.log.error(
                "MT reader failing, retrying with backoff: {cause}",
                cause=failure_text(failure),
            )
        if failure.check(txredisapi.ResponseError) and "NOGROUP" in str(failure.value):
            # the stream or its group is gone (Redis restarted empty, a stream
            # deleted): create them again
            for channel in self._channels.values():
                channel.group_ready = False
        delay = min(RETRY_INITIAL * 2 ** (self._failures - 1), RETRY_MAX)
        yield task.deferLater(self.clock, delay, lambda: None)

    @defer.inlineCallbacks
    def _ensure_groups(self, connection):
        for channel in list(self._channels.values()):
            if channel.group_ready:
                continue
            try:
                yield connection.execute_command(
                    "XGROUP", "CREATE", channel.key, keys.MT_GROUP, "0", "MKSTREAM"
                )
            except txredisapi.ResponseError as error:
                if "BUSYGROUP" not in str(error):
                    raise
            channel.group_ready = True

    @defer.inlineCallbacks
    def _round(self):
        """One round of reads; fires with the number of entries handled, or
        None when nothing could be read (no room anywhere)."""
        connection = yield self._connection()
        yield self._ensure_groups(connection)

        if self.writer.backlog > MAX_WRITER_BACKLOG:
            return None

        pending, live = [], []
        some_full = False
        for channel in list(self._channels.values()):
            if not channel.group_ready:
                # Added while the groups were being made: next round.
                continue
            room = min(self.count, channel.capacity())
            if room > 0:
                (live if channel.cursor == ">" else pending).append((channel, room))
            else:
                some_full = True
        if not pending and not live:
            return None

        groups = {}
        for channel, room in live:
            groups.setdefault(_power_of_two_floor(room), []).append(channel)

        # A blocking read cannot be cut short when a full channel gets room
        # again, so it is only issued when it covers every channel; otherwise
        # the reader sweeps without blocking and waits where wake() reaches it.
        reads = [self._read(connection, [channel], room) for channel, room in pending]
        if len(groups) == 1 and not pending and not some_full:
            ((room, channels),) = groups.items()
            reads.append(self._read(connection, channels, room, block=True))
        else:
            reads.extend(
                self._read(connection, channels, room)
                for room, channels in groups.items()
            )
        handled = yield defer.gatherResults(reads, consumeErrors=True).addErrback(
            lambda failure: failure.value.subFailure
        )
        handled = sum(handled)

        if handled == 0 and some_full:
            return None
        if handled == 0 and live and (pending or len(groups) > 1):
            # the sweep found nothing: wait for new entries on every stream
            smallest = min(groups)
            channels = [channel for group in groups.values() for channel in group]
            handled = yield self._read(connection, channels, smallest, block=True)
        return handled

    @defer.inlineCallbacks
    def _read(self, connection, channels, count: int, block: bool = False):
        arguments = ["XREADGROUP", "GROUP", keys.MT_GROUP, self.consumer_name]
        arguments += ["COUNT", count]
        if block:
            arguments += ["BLOCK", self.block_ms]
        arguments.append("STREAMS")
        arguments += [channel.key for channel in channels]
        arguments += [channel.cursor for channel in channels]
        reply = yield connection.execute_command(*arguments)

        by_key = {channel.key: channel for channel in channels}
        handled = 0
        for stream in reply or ():
            key, entries = stream[0], stream[1]
            key = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
            channel = by_key.get(key)
            if channel is None or self._channels.get(channel.channel_id) is not channel:
                continue
            if channel.cursor != ">":
                if not entries:
                    channel.cursor = ">"
                    channel.claimed.clear()
                    if channel.pending_done is not None:
                        channel.pending_done()
                    continue
                channel.cursor = reply_text(entries[-1][0])
                if channel.claimed:
                    entries = [
                        item
                        for item in entries
                        if reply_text(item[0]) not in channel.claimed
                    ]
            handled += self._hand_over(channel, entries)
        return handled

    def _hand_over(self, channel: _Channel, entries) -> int:
        good = []
        for item in entries or ():
            entry_id, fields = reply_text(item[0]), item[1]
            if fields is None:
                # deleted from the stream while pending: nothing to send
                self.ack(channel.channel_id, [entry_id])
                continue
            try:
                good.append((entry_id, decode_entry(fields, self.max_entry_bytes)))
            except ValueError as error:
                message_id = getattr(error, "message_id", None) or entry_id
                self._reject(channel, entry_id, str(error), message_id)
        if good:
            channel.deliver(good)
        return len(entries or ())

    def _reject(self, channel: _Channel, entry_id: str, reason: str, message_id: str):
        if channel.reject is not None:
            channel.reject(entry_id, reason, message_id)
            return
        self.log.warn(
            "dropping a bad MT entry channel={channel} entry={entry} id={id}: {reason}",
            channel=channel.channel_id,
            entry=entry_id,
            id=message_id,
            reason=reason,
        )
        self.ack(channel.channel_id, [entry_id])
