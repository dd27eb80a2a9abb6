# Tests for cmppsvc.mtqueue: one reader for many MT streams, against real Redis.
import txredisapi
from twisted.internet import defer, reactor, task
from twisted.logger import capturedLogs
from twisted.trial import unittest

from cmppsvc import keys
from cmppsvc.mtqueue import MTReader, decode_entry, done_commands, reader_connection
from cmppsvc.writebehind import WriteBehind
from tests.redisserver import fast_reconnect, start_redis


class Channel:
    """A channel stand-in: takes entries while it has room."""

    def __init__(self, room=0):
        self.room = room
        self.batches = []
        self.rejected = []

    @property
    def entries(self):
        return [entry for batch in self.batches for entry in batch]

    def deliver(self, entries):
        assert len(entries) <= self.room, (len(entries), self.room)
        self.room -= len(entries)
        self.batches.append(entries)

    def capacity(self):
        return self.room

    def reject(self, entry_id, reason, message_id):
        self.rejected.append((entry_id, reason, message_id))


@defer.inlineCallbacks
def wait_until(condition, seconds=5.0):
    """Poll the condition on the reactor, a bounded number of times."""
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        yield task.deferLater(reactor, 0.02, lambda: None)
    raise AssertionError("condition not reached in time")


class DecodeEntryTests(unittest.SynchronousTestCase):
    """Entry fields from Redis as text, bounded."""

    def test_decode(self):
        self.assertEqual(decode_entry(["a", "1", "b", "é"]), {"a": "1", "b": "é"})
        self.assertRaises(ValueError, decode_entry, ["a", b"\xff"])
        self.assertRaises(ValueError, decode_entry, ["a"])
        self.assertRaises(ValueError, decode_entry, ["a", "é" * 40], limit=64)


class MTReaderTests(unittest.TestCase):
    """Against a real redis-server."""

    timeout = 30

    @defer.inlineCallbacks
    def setUp(self):
        self.server, self.redis = yield start_redis(self)
        self.writer = WriteBehind(self.redis, reactor)
        self.addCleanup(self.writer.stop)

    def reader(self, consumer="p1", block_ms=100):
        def connect():
            d = reader_connection("127.0.0.1", self.server.port)
            return d.addCallback(fast_reconnect)

        reader = MTReader(connect, self.writer, consumer, reactor, block_ms=block_ms)
        self.addCleanup(reader.stop)
        return reader

    @defer.inlineCallbacks
    def produce(self, channel_id, count, start=0):
        for n in range(start, start + count):
            yield self.redis.execute_command(
                "XADD", keys.mt_stream(channel_id), "*", "id", f"{n:03d}", "dest", "1"
            )

    @defer.inlineCallbacks
    def test_an_idle_channel_never_holds_up_a_full_one(self):
        """A full channel that gets room again is read at once, not after a
        blocking read on the idle channels' streams (block_ms is long here)."""
        busy, idle = Channel(room=2), Channel(room=10)
        yield self.produce("busy", 6)
        reader = self.reader(block_ms=60_000)
        reader.add_channel("busy", busy.deliver, busy.capacity)
        reader.add_channel("idle", idle.deliver, idle.capacity)
        reader.start()
        yield wait_until(lambda: len(busy.entries) == 2)

        # The busy channel is full; once a blocking read on the idle stream
        # alone could be under way, room comes back and the reader is woken.
        yield task.deferLater(reactor, 0.2, lambda: None)
        busy.room = 4
        reader.wake()
        yield wait_until(lambda: len(busy.entries) == 6)
        self.assertEqual(idle.entries, [])

    @defer.inlineCallbacks
    def test_two_channels_capacity_respected(self):
        yield self.produce("a", 10)
        yield self.produce("b", 10)
        a, b = Channel(room=3), Channel(room=0)
        reader = self.reader()
        reader.add_channel("a", a.deliver, a.capacity)
        reader.add_channel("b", b.deliver, b.capacity, b.reject)
        reader.start()

        yield wait_until(lambda: len(a.entries) == 3)
        self.assertEqual(b.entries, [])
        self.assertEqual(
            [fields["id"] for _, fields in a.entries], ["000", "001", "002"]
        )

        a.room, b.room = 5, 100
        reader.wake()
        yield wait_until(lambda: len(a.entries) == 8 and len(b.entries) == 10)
        self.assertEqual(
            [fields["id"] for _, fields in b.entries], [f"{n:03d}" for n in range(10)]
        )

        # new entries arrive while the reader blocks
        yield self.produce("b", 2, start=10)
        yield wait_until(lambda: len(b.entries) == 12)
        self.assertEqual(b.entries[-1][1], {"id": "011", "dest": "1"})

    @defer.inlineCallbacks
    def test_pending_redelivered_after_restart_and_ack(self):
        yield self.produce("a", 4)
        first = Channel(room=100)
        reader = self.reader()
        reader.add_channel("a", first.deliver, first.capacity)
        reader.start()
        yield wait_until(lambda: len(first.entries) == 4)
        reader.ack("a", [first.entries[0][0]])
        yield self.writer.flush()
        yield reader.stop()

        # same consumer name after a restart: its unacknowledged entries first
        second = Channel(room=100)
        again = self.reader()
        delivered_when_done = []
        again.add_channel(
            "a",
            second.deliver,
            second.capacity,
            pending_done=lambda: delivered_when_done.append(len(second.entries)),
        )
        again.start()
        yield wait_until(lambda: len(second.entries) == 3)
        self.assertEqual(second.entries, first.entries[1:])
        yield wait_until(lambda: delivered_when_done)
        self.assertEqual(delivered_when_done, [3], "told once, after all pending")

        again.ack("a", [entry_id for entry_id, _ in second.entries])
        yield self.writer.flush()
        pending = yield self.redis.execute_command(
            "XPENDING", keys.mt_stream("a"), keys.MT_GROUP
        )
        self.assertEqual(int(pending[0]), 0)

    @defer.inlineCallbacks
    def test_bad_entries_are_reported_not_fatal(self):
        stream = keys.mt_stream("a")
        bad_text = yield self.redis.execute_command(
            "XADD", stream, "*", "id", "m1", "text", b"\xff\xfe"
        )
        yield self.redis.execute_command(
            "XADD", stream, "*", "id", "m2", "text", "x" * 70_000
        )
        bad_id = yield self.redis.execute_command(
            "XADD", stream, "*", "id", b"\xff", "text", "hi"
        )
        yield self.redis.execute_command("XADD", stream, "*", "text", "fine")
        channel = Channel(room=100)
        reader = self.reader()
        reader.add_channel("a", channel.deliver, channel.capacity, channel.reject)
        reader.start()
        yield wait_until(lambda: len(channel.entries) == 1)
        too_large = "larger than the entry limit of 65536 bytes"
        self.assertEqual(
            [(reason, message_id) for _, reason, message_id in channel.rejected],
            [
                ("text: not UTF-8", "m1"),
                ("text: 70000 characters, " + too_large, "m2"),
                ("id: not UTF-8", bad_id),
            ],
        )
        self.assertEqual(channel.rejected[0][0], bad_text)

    @defer.inlineCallbacks
    def test_claim_stale_takes_over_a_dead_consumers_entries(self):
        yield self.produce("a", 3)
        dead = Channel(room=100)
        dead_reader = self.reader("dead")
        dead_reader.add_channel("a", dead.deliver, dead.capacity)
        dead_reader.start()
        yield wait_until(lambda: len(dead.entries) == 3)
        yield dead_reader.stop()

        alive = Channel(room=2)
        reader = self.reader("alive")
        reader.add_channel("a", alive.deliver, alive.capacity)
        reader.start()
        claimed = yield reader.claim_stale("a", min_idle_ms=0)
        self.assertEqual(claimed, 2)
        alive.room = 5
        claimed = yield reader.claim_stale("a", min_idle_ms=0)
        self.assertEqual(claimed, 1)
        self.assertEqual(alive.entries, dead.entries)

    @defer.inlineCallbacks
    def test_reader_resumes_after_redis_restart(self):
        channel = Channel(room=100)
        reader = self.reader()
        reader.add_channel("a", channel.deliver, channel.capacity)
        reader.start()
        yield self.produce("a", 2)
        yield wait_until(lambda: len(channel.entries) == 2)

        yield self.server.restart()
        yield self.produce("a", 2, start=2)
        yield wait_until(lambda: len(channel.entries) == 4)
        self.assertEqual(
            [fields["id"] for _, fields in channel.entries],
            ["000", "001", "002", "003"],
        )

    @defer.inlineCallbacks
    def test_acknowledged_entries_are_trimmed(self):
        yield self.produce("a", 300)
        channel = Channel(room=1000)
        reader = self.reader()
        reader.add_channel("a", channel.deliver, channel.capacity)
        reader.start()
        yield wait_until(lambda: len(channel.entries) == 300)

        reader.ack("a", [entry_id for entry_id, _ in channel.entries[:250]])
        yield self.writer.flush()
        yield reader.trim()
        left = yield self.redis.execute_command("XLEN", keys.mt_stream("a"))
        self.assertLessEqual(left, 50 + 100, "whole nodes of 100 entries go")
        self.assertGreaterEqual(left, 50)


class DoneCommandsTests(unittest.SynchronousTestCase):
    """The XACK an outcome is written together with."""

    def test_done_commands(self):
        self.assertEqual(
            done_commands("c1", ["1-0", "2-0"]),
            (("XACK", keys.mt_stream("c1"), keys.MT_GROUP, "1-0", "2-0"),),
        )


class TrimFailureTests(unittest.SynchronousTestCase):
    """A trim that cannot work is said once; one that works again is said too."""

    def test_warned_once_then_resumed(self):
        class Refusing:
            def __init__(self):
                self.error = txredisapi.ResponseError("NOPERM this user has no EVAL")

            def eval(self, *arguments):
                return defer.fail(self.error) if self.error else defer.succeed(3)

        redis = Refusing()
        writer = WriteBehind(redis, task.Clock())
        reader = MTReader(redis, writer, "p1", task.Clock())
        reader.add_channel("c1", lambda entries: None, lambda: 0)
        with capturedLogs() as events:
            reader.trim()
            reader.trim()
            redis.error = None
            reader.trim()
        said = [(e["log_level"].name, e["log_format"]) for e in events]
        self.assertEqual([level for level, _ in said], ["warn", "info"])
        self.assertIn("cannot be trimmed", said[0][1])
        self.assertIn("trimmed again", said[1][1])
