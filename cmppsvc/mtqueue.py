# -*- test-case-name: tests.test_mtqueue,tests.test_stale_entries -*-
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

No entry stays pending with nobody working on it:

- Every ``SWEEP_INTERVAL`` seconds the reader sweeps each channel it runs for
  entries pending for another consumer for more than ``stale_idle`` seconds
  (a process that died, or gave the channel up, after the one-time claim of a
  takeover, cmppsvc.takeover) and claims them (XCLAIM) within the channel's
  capacity; they are then sent like any other entry and a line says how many.
  This consumer's own entries are never swept: they are being worked on here,
  however long they wait. A sweep costs at most one XPENDING and one XCLAIM
  of ``SWEEP_BATCH`` entries per channel, issued one channel after another on
  the command connection; a channel with more pending entries is gone
  through over several sweeps.
- A read reply can arrive for a channel that stopped here meanwhile (Redis
  held the read through an outage). Its entries are released
  (``cmppsvc.mtentries.release_command``) so that whoever runs the channel
  claims them at its next sweep, unless the channel restarted here (its new
  start reads them again as this consumer's pending entries) or they were
  delivered again since. Entries claimed for a channel that stopped during
  the claim are released the same way.
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
    RELEASED_CONSUMER,
    RELEASED_IDLE_MS,
    Entry,
    EntryId,
    decode_entry,
    done_commands,
    reader_connection,
    release_command,
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

#: Seconds between two sweeps for entries other consumers left pending.
SWEEP_INTERVAL = 30.0

#: Seconds an entry must be pending for another consumer before a sweep takes
#: it: far above the time any process works on an entry it still holds.
STALE_IDLE = 300.0

#: Most pending entries one sweep looks at, and claims, per channel.
SWEEP_BATCH = 100


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
    # Where the next sweep goes on through the stream's pending entries.
    sweep_from: str = "-"


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
        stale_idle: float = STALE_IDLE,
    ):
        if consumer_name == RELEASED_CONSUMER:
            raise ValueError(f"{RELEASED_CONSUMER!r} holds released entries")
        if not 0 < stale_idle * 1000 < RELEASED_IDLE_MS:
            raise ValueError("stale_idle must be above 0 and below a day")
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
        self.stale_idle = stale_idle

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
        self._sweeping = task.LoopingCall(self._sweep_quietly)
        self._sweeping.clock = clock
        # Channels whose last sweep failed for a cause that does not pass.
        self._sweep_failing: set[str] = set()

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
        if not self._sweeping.running:
            self._sweeping.start(SWEEP_INTERVAL, now=False)

    def stop(self) -> defer.Deferred:
        """Stop reading; fires when the read loop has ended (at most about
        ``block_ms`` later unless the reader owns its connection)."""
        self._running = False
        self._stopped = True
        self.wake()
        if self._trimming.running:
            self._trimming.stop()
        if self._sweeping.running:
            self._sweeping.stop()
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
            stale = {
                reply_text(item[0]): int(item[3]) + 1
                for item in pending
                if reply_text(item[1]) != self.consumer_name
            }
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
            if not self._current(channel):
                yield self._release(connection, channel, entries, stale)
                break
            if channel.cursor != ">":
                channel.claimed.update(reply_text(item[0]) for item in entries)
            handled += self._hand_over(channel, entries)
        return handled

    def sweep(self) -> defer.Deferred:
        """Claim, for every channel read here, entries another consumer left
        pending longer than ``stale_idle``, and deliver them (see the module
        docstring); also done every ``SWEEP_INTERVAL`` while reading. Fires
        with the number of entries delivered or rejected."""
        return self._sweep()

    def _sweep_quietly(self) -> defer.Deferred:
        # The LoopingCall's call: a failure would end it.
        return self._sweep().addErrback(
            lambda failure: self.log.failure("MT sweep failed", failure)
        )

    @defer.inlineCallbacks
    def _sweep(self):
        handled = 0
        for channel in list(self._channels.values()):
            # A channel still reading its own pending entries would read the
            # claimed ones again; it is swept once it has.
            if not self._current(channel) or channel.cursor != ">":
                continue
            try:
                handled += yield self._sweep_channel(channel)
            except Exception:
                failure = defer.Failure()
                if is_transient(failure):
                    break  # Redis is away: the read loop says so; next sweep
                self._sweep_failed(failure, channel.channel_id)
                continue
            self._sweep_failing.discard(channel.channel_id)
        return handled

    @defer.inlineCallbacks
    def _sweep_channel(self, channel: _Channel):
        """One XPENDING, then at most one XCLAIM, for ``channel``."""
        room = min(SWEEP_BATCH, channel.capacity())
        if room <= 0:
            return 0
        redis = self.writer.redis
        idle_ms = int(self.stale_idle * 1000)
        pending = yield redis.execute_command(
            "XPENDING",
            channel.key,
            keys.MT_GROUP,
            "IDLE",
            idle_ms,
            channel.sweep_from,
            "+",
            SWEEP_BATCH,
        )
        pending = pending or []
        stale: dict[str, int] = {}
        consumers = set()
        # Past the last entry listed, or from the start once all were listed.
        next_from = "(" + reply_text(pending[-1][0]) if pending else "-"
        if len(pending) < SWEEP_BATCH:
            next_from = "-"
        for item in pending:
            consumer = reply_text(item[1])
            if consumer == self.consumer_name:
                continue
            if len(stale) == room:
                next_from = "(" + list(stale)[-1]
                break
            stale[reply_text(item[0])] = int(item[3]) + 1
            consumers.add(consumer)
        channel.sweep_from = next_from
        if not stale or not self._current(channel):
            return 0

        entries = yield redis.execute_command(
            "XCLAIM", channel.key, keys.MT_GROUP, self.consumer_name, idle_ms, *stale
        )
        if not self._current(channel):
            yield self._release(redis, channel, entries, stale)
            return 0
        if entries:
            self.log.info(
                "claimed {count} MT entries left pending by {consumers} "
                "channel={channel}",
                count=len(entries),
                consumers=", ".join(sorted(consumers)),
                channel=channel.channel_id,
            )
        return self._hand_over(channel, entries)

    def _sweep_failed(self, failure, channel_id: str) -> None:
        # NOGROUP: the stream or its group is gone, nothing is pending (the
        # read loop makes them again). Any other cause is said once.
        if "NOGROUP" in str(failure.value) or channel_id in self._sweep_failing:
            return
        self._sweep_failing.add(channel_id)
        self.log.warn(
            "MT stream cannot be swept for stale entries channel={channel}: {cause}",
            channel=channel_id,
            cause=failure_text(failure),
        )

    def _current(self, channel: _Channel) -> bool:
        """True while ``channel`` is what this reader reads for its id."""
        return self._channels.get(channel.channel_id) is channel

    @defer.inlineCallbacks
    def _release(self, connection, channel: _Channel, entries, deliveries):
        """Release entries taken for ``channel`` after it stopped here.

        ``deliveries`` maps entry ids to the delivery count they had once
        taken here; an entry not released (delivered again since, no longer
        pending) is someone else's to finish. Never fails: a failure is logged
        and leaves the entries pending for this consumer.
        """
        taken = [reply_text(item[0]) for item in entries or ()]
        if not taken:
            return
        channel_id = channel.channel_id
        try:
            released = yield connection.execute_command(
                *release_command(
                    channel_id,
                    self.consumer_name,
                    [(entry_id, deliveries[entry_id]) for entry_id in taken],
                )
            )
        except Exception:
            self.log.warn(
                "{count} MT entries taken for channel={channel} after it stopped "
                "here could not be released; they stay pending for "
                "consumer={consumer} until claimed: {cause}",
                count=len(taken),
                channel=channel_id,
                consumer=self.consumer_name,
                cause=failure_text(defer.Failure()),
            )
            return
        self.log.info(
            "released {released} of {count} MT entries taken for channel={channel} "
            "after it stopped here: its owner claims them at its next sweep",
            released=released,
            count=len(taken),
            channel=channel_id,
        )

    @defer.inlineCallbacks
    def _dropped(self, connection, channel: _Channel, entries):
        """A read reply for ``channel`` that no longer runs here."""
        if not entries:
            return
        channel_id = channel.channel_id
        now = self._channels.get(channel_id)
        if channel.cursor != ">" or (now is not None and now.cursor != ">"):
            # Already this consumer's pending entries before the read, or the
            # channel started here again and reads them with its own.
            self.log.info(
                "{count} MT entries read for channel={channel} after it stopped "
                "here stay pending for consumer={consumer}",
                count=len(entries),
                channel=channel_id,
                consumer=self.consumer_name,
            )
            return
        # New entries, delivered once: to this read.
        deliveries = {reply_text(item[0]): 1 for item in entries}
        yield self._release(connection, channel, entries, deliveries)

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
            if channel is None:
                continue
            if not self._current(channel):
                yield self._dropped(connection, channel, entries)
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
