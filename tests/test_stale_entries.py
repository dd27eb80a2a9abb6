# Tests for the MT reader's sweep and release of stale entries, against a real
# private redis-server; the reader's timers run on a task.Clock.
"""No MT entry stays pending with nobody working on it: entries another
consumer left are swept up, the reader's own are not, a sweep's cost is
bounded, and a read reply for a channel gone from the reader is released."""

import txredisapi
from twisted.internet import defer, reactor, task
from twisted.logger import capturedLogs, globalLogPublisher
from twisted.trial import unittest

from cmppsvc import keys
from cmppsvc.mtentries import RELEASED_CONSUMER, RELEASED_IDLE_MS
from cmppsvc.mtqueue import (
    STALE_IDLE,
    SWEEP_BATCH,
    SWEEP_INTERVAL,
    MTReader,
    reader_connection,
)
from cmppsvc.writebehind import WriteBehind
from tests.redisserver import fast_reconnect, start_redis

#: Idle time (ms) given to entries meant to look abandoned long ago.
LONG_IDLE_MS = int(STALE_IDLE * 1000) * 2


class Channel:
    """A channel stand-in: takes entries while it has room, says when."""

    def __init__(self, room=0):
        self.room = room
        self.entries = []
        self._waiting = []

    def deliver(self, entries):
        assert len(entries) <= self.room, (len(entries), self.room)
        self.room -= len(entries)
        self.entries += entries
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            waiter.callback(entries)

    def capacity(self):
        return self.room

    def next_delivery(self):
        waiter = defer.Deferred()
        self._waiting.append(waiter)
        return waiter

    @property
    def ids(self):
        return [entry_id for entry_id, _ in self.entries]


def next_log(text):
    """Fires with the next log event whose format holds ``text``."""
    said = defer.Deferred()

    def observe(event):
        if text in event.get("log_format", "") and not said.called:
            globalLogPublisher.removeObserver(observe)
            said.callback(event)

    globalLogPublisher.addObserver(observe)
    return said


class HeldRead:
    """A reader connection that holds back the reply of its next read of new
    entries (">") until ``let_go()``: the read has run in Redis, its reply is
    late, as after an outage."""

    def __init__(self):
        self.connection = None
        self.arrived = None
        self._gate = None
        self._reply = None
        self._after = {}

    def wrap(self, connection):
        self.connection = connection
        return self

    def hold_next_read(self):
        """Fires with the reply once the held read has run in Redis."""
        self.arrived = defer.Deferred()
        return self.arrived

    def after(self, name):
        """Fires with the reply of the next ``name`` command."""
        self._after[name] = defer.Deferred()
        return self._after[name]

    def let_go(self):
        if self._gate is not None:
            gate, self._gate = self._gate, None
            gate.callback(self._reply)

    def execute_command(self, *arguments):
        result = self.connection.execute_command(*arguments)
        waiter = self._after.pop(arguments[0], None)
        if waiter is not None:
            result.addBoth(lambda reply: (waiter.callback(reply), reply)[1])
        if self.arrived is None or arguments[0] != "XREADGROUP" or arguments[-1] != ">":
            return result
        arrived, self.arrived = self.arrived, None
        gate = self._gate = defer.Deferred()

        def hold(reply):
            self._reply = reply
            arrived.callback(reply)
            return gate

        return result.addCallback(hold)

    def disconnect(self):
        return self.connection.disconnect()


class ClaimingRemoves:
    """A command connection on which the reply of an XCLAIM comes after the
    channel was removed from the reader (the channel stopped meanwhile)."""

    def __init__(self, redis, reader_holder, channel_id):
        self.redis = redis
        self.reader_holder = reader_holder
        self.channel_id = channel_id

    def execute_command(self, *arguments):
        result = self.redis.execute_command(*arguments)
        if arguments[0] == "XCLAIM":
            self.reader_holder[0].remove_channel(self.channel_id)
        return result

    def __getattr__(self, name):
        return getattr(self.redis, name)


class StaleEntryTests(unittest.TestCase):
    timeout = 30

    @defer.inlineCallbacks
    def setUp(self):
        self.server, self.redis = yield start_redis(self)
        self.writer = WriteBehind(self.redis, reactor)
        self.addCleanup(self.writer.stop)
        self.clock = task.Clock()

    def reader(self, consumer, held=False, writer=None):
        """A reader on its own connection (held: a `HeldRead` one, given to
        ``self.held``); its timers run on ``self.clock``."""

        def connect():
            connection = reader_connection("127.0.0.1", self.server.port)
            connection.addCallback(fast_reconnect)
            if held:
                connection.addCallback(self.held.wrap)
            return connection

        if held:
            self.held = HeldRead()

        reader = MTReader(
            connect, writer or self.writer, consumer, self.clock, block_ms=100
        )
        self.addCleanup(reader.stop)
        if held:
            self.addCleanup(self.held.let_go)
        return reader

    def running(self, reader, channel_id, channel, room_after=None):
        """Add the channel and start the reader; fires once the channel has
        read its own pending entries (then its room becomes ``room_after``)."""
        return self.all_running(reader, {channel_id: channel}, room_after)

    def all_running(self, reader, channels, room_after=None):
        """`running` for several channels of one reader."""
        done = []
        for channel_id, channel in channels.items():
            read = defer.Deferred()
            done.append(read)

            def pending_done(channel=channel, read=read):
                if room_after is not None:
                    channel.room = room_after
                read.callback(None)

            reader.add_channel(
                channel_id, channel.deliver, channel.capacity, pending_done=pending_done
            )
        reader.start()
        return defer.gatherResults(done)

    @defer.inlineCallbacks
    def add(self, channel_id, count):
        stream = keys.mt_stream(channel_id)
        yield self.redis.execute_command(
            "XGROUP", "CREATE", stream, keys.MT_GROUP, "0", "MKSTREAM"
        ).addErrback(lambda failure: failure.trap(txredisapi.ResponseError))
        ids = []
        for n in range(count):
            entry_id = yield self.redis.execute_command(
                "XADD", stream, "*", "id", f"m{n}", "to", "13800000000"
            )
            ids.append(entry_id)
        return ids

    @defer.inlineCallbacks
    def leave_pending(self, channel_id, consumer, count, idle_ms=LONG_IDLE_MS):
        """``count`` new entries read by ``consumer``, which then went away
        ``idle_ms`` ago without finishing them."""
        ids = yield self.add(channel_id, count)
        stream = keys.mt_stream(channel_id)
        yield self.redis.execute_command(
            "XREADGROUP", "GROUP", keys.MT_GROUP, consumer, "COUNT", count,
            "STREAMS", stream, ">",
        )  # fmt: skip
        yield self.age(channel_id, consumer, ids, idle_ms)
        return ids

    def age(self, channel_id, consumer, ids, idle_ms=LONG_IDLE_MS):
        """Make pending entries look idle for ``idle_ms`` (owner unchanged)."""
        return self.redis.execute_command(
            "XCLAIM", keys.mt_stream(channel_id), keys.MT_GROUP, consumer, 0,
            *ids, "IDLE", idle_ms, "JUSTID",
        )  # fmt: skip

    @defer.inlineCallbacks
    def pending(self, channel_id):
        """{entry id: (consumer, idle ms, deliveries)} of the channel's stream."""
        reply = yield self.redis.execute_command(
            "XPENDING", keys.mt_stream(channel_id), keys.MT_GROUP, "-", "+", 10_000
        )
        return {item[0]: (item[1], item[2], item[3]) for item in reply}

    @defer.inlineCallbacks
    def calls(self, *commands):
        """How many times Redis ran each command since the last reset."""
        info = yield self.redis.execute_command("INFO", "commandstats")
        found = dict.fromkeys(commands, 0)
        for line in info.splitlines():
            name, _, stats = line.partition(":")
            command = name.removeprefix("cmdstat_")
            if command in found:
                found[command] = int(stats.split(",")[0].split("=")[1])
        return tuple(found[command] for command in commands)

    # -- the sweep ---------------------------------------------------------

    @defer.inlineCallbacks
    def test_entries_left_after_the_takeover_claim_are_swept_up(self):
        """Entries a dead consumer left, too fresh for the takeover's claim,
        are delivered by the sweep the reader's own timer runs, and said."""
        left = yield self.leave_pending("a", "dead", 3, idle_ms=0)
        channel = Channel(room=10)
        reader = self.reader("heir")
        yield self.running(reader, "a", channel)
        claimed = yield reader.claim_stale("a", min_idle_ms=15_000)
        self.assertEqual(claimed, 0, "not idle for a lease time yet")

        # The takeover period is over; the dead consumer's entries age.
        yield self.age("a", "dead", left)
        with capturedLogs() as events:
            arrived = channel.next_delivery()
            self.clock.advance(SWEEP_INTERVAL)
            yield arrived

        self.assertEqual(channel.ids, left)
        self.assertEqual(
            [entry[0] for entry in (yield self.pending("a")).values()], ["heir"] * 3
        )
        said = [e for e in events if "claimed" in e.get("log_format", "")]
        self.assertEqual(len(said), 1)
        self.assertEqual(
            (said[0]["count"], said[0]["channel"], said[0]["consumers"]),
            (3, "a", "dead"),
        )

    @defer.inlineCallbacks
    def test_own_entries_and_fresh_ones_are_not_swept(self):
        """The reader's own entries are being worked on here, however long
        they wait; another consumer's recent entries may still be worked on."""
        own = yield self.add("a", 2)
        channel = Channel(room=2)
        reader = self.reader("p1")
        yield self.running(reader, "a", channel)
        while len(channel.entries) < 2:
            yield channel.next_delivery()
        yield self.age("a", "p1", own)
        dead = yield self.leave_pending("a", "dead", 2)
        recent = yield self.leave_pending("a", "busy", 2, idle_ms=0)

        channel.room = 10
        claimed = yield reader.sweep()
        self.assertEqual(claimed, 2)
        self.assertEqual(channel.ids, own + dead)
        owners = yield self.pending("a")
        self.assertEqual(
            [owners[entry_id][0] for entry_id in own + dead + recent],
            ["p1"] * 4 + ["busy"] * 2,
        )
        self.assertEqual((yield reader.sweep()), 0, "nothing is delivered twice")

    @defer.inlineCallbacks
    def test_a_sweep_costs_one_xpending_and_one_xclaim_per_channel(self):
        """Each channel gets at most one XPENDING and one XCLAIM of
        SWEEP_BATCH entries per sweep, within its room; a channel with more
        left pending is gone through over several sweeps."""
        size = SWEEP_BATCH * 2 + SWEEP_BATCH // 2
        channels = {name: Channel(room=10 * size) for name in ("a", "b", "c")}
        channels["c"].room = 30
        left = {}
        for name in channels:
            left[name] = yield self.leave_pending(name, "dead", size)
        reader = self.reader("heir")
        yield self.all_running(reader, channels)

        yield self.redis.execute_command("CONFIG", "RESETSTAT")
        claimed = yield reader.sweep()
        self.assertEqual(claimed, 2 * SWEEP_BATCH + 30)
        self.assertEqual((yield self.calls("xpending", "xclaim")), (3, 3))

        yield self.redis.execute_command("CONFIG", "RESETSTAT")
        channels["c"].room = 0
        yield reader.sweep()
        yield reader.sweep()
        self.assertEqual((yield self.calls("xpending", "xclaim")), (4, 4))
        self.assertEqual(channels["a"].ids, left["a"])
        self.assertEqual(channels["b"].ids, left["b"])
        self.assertEqual(channels["c"].ids, left["c"][:30])

        channels["c"].room = size
        for _ in range(3):
            yield reader.sweep()
        self.assertEqual(channels["c"].ids, left["c"])

    # -- replies and claims for a channel gone from the reader --------------

    @defer.inlineCallbacks
    def _late_read(self, old_consumer, heir_consumer):
        """The QA case: the channel runs in the heir (past its own pending
        entries) when the old process's read, held through an outage, runs."""
        heir_channel = Channel(room=10)
        heir = self.reader(heir_consumer)
        # The heir has no room for a while: its own reads stay off the stream.
        yield self.running(heir, "a", heir_channel, room_after=0)

        ids = yield self.add("a", 4)
        old_channel = Channel(room=10)
        old = self.reader(old_consumer, held=True)
        arrived = self.held.hold_next_read()
        old.add_channel("a", old_channel.deliver, old_channel.capacity)
        old.start()
        yield arrived
        old.remove_channel("a")  # the channel stopped there meanwhile

        said = next_log("released")
        self.held.let_go()
        said = yield said
        self.assertEqual(
            (said["released"], said["count"], said["channel"]), (4, 4, "a")
        )
        owners = yield self.pending("a")
        self.assertEqual(
            {owner for owner, _, _ in owners.values()}, {RELEASED_CONSUMER}
        )
        self.assertTrue(all(idle >= RELEASED_IDLE_MS for _, idle, _ in owners.values()))

        # At the heir's next sweep, whatever its consumer name.
        heir_channel.room = 10
        arrived = heir_channel.next_delivery()
        self.clock.advance(SWEEP_INTERVAL)
        yield arrived
        self.assertEqual(heir_channel.ids, ids)
        self.assertEqual(old_channel.entries, [])
        self.assertEqual((yield heir.sweep()), 0, "delivered once")

    def test_late_read_for_a_channel_gone_is_released(self):
        return self._late_read("old", "heir")

    def test_late_read_released_for_an_heir_of_the_same_name(self):
        return self._late_read("qa", "qa")

    @defer.inlineCallbacks
    def test_entries_delivered_again_since_are_not_released(self):
        """An heir of the same name that read the entries again (its start
        reads its own pending ones) keeps them: the release leaves them."""
        ids = yield self.add("a", 3)
        old = self.reader("qa", held=True)
        arrived = self.held.hold_next_read()
        old.add_channel("a", Channel(room=10).deliver, lambda: 10)
        old.start()
        yield arrived
        old.remove_channel("a")

        heir_channel = Channel(room=10)
        yield self.running(self.reader("qa"), "a", heir_channel)
        self.assertEqual(heir_channel.ids, ids)

        released = self.held.after("EVAL")
        self.held.let_go()
        self.assertEqual((yield released), 0)
        owners = yield self.pending("a")
        self.assertEqual([owners[entry_id][0] for entry_id in ids], ["qa"] * 3)

    @defer.inlineCallbacks
    def test_late_read_for_a_channel_restarted_here_is_read_again(self):
        """The channel started again in the same reader: its start reads the
        entries with its own pending ones, nothing is released."""
        ids = yield self.add("a", 3)
        yield self.redis.execute_command("CONFIG", "RESETSTAT")
        reader = self.reader("p1", held=True)
        arrived = self.held.hold_next_read()
        first = Channel(room=10)
        reader.add_channel("a", first.deliver, first.capacity)
        reader.start()
        yield arrived
        reader.remove_channel("a")
        second = Channel(room=10)
        delivered = second.next_delivery()
        reader.add_channel("a", second.deliver, second.capacity)

        self.held.let_go()
        yield delivered
        self.assertEqual((first.ids, second.ids), ([], ids))
        self.assertEqual((yield self.calls("eval")), (0,))

    @defer.inlineCallbacks
    def test_claim_for_a_channel_that_stopped_meanwhile_is_released(self):
        """Entries a sweep claimed for a channel that stopped before the
        claim's reply are released, not left pending for this consumer."""
        left = yield self.leave_pending("a", "dead", 2)
        holder = []
        writer = WriteBehind(ClaimingRemoves(self.redis, holder, "a"), reactor)
        self.addCleanup(writer.stop)
        channel = Channel(room=10)
        reader = self.reader("heir", writer=writer)
        holder.append(reader)
        yield self.running(reader, "a", channel)

        self.assertEqual((yield reader.sweep()), 0)
        self.assertEqual(channel.entries, [])
        owners = yield self.pending("a")
        self.assertEqual(
            [owners[entry_id][0] for entry_id in left], [RELEASED_CONSUMER] * 2
        )

    def test_the_released_consumer_name_is_refused(self):
        self.assertRaises(
            ValueError, MTReader, self.redis, self.writer, RELEASED_CONSUMER, self.clock
        )
