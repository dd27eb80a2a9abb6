# Tests for cmppsvc.inflight: part records, done marks, atomic items, reload.
from twisted.internet import defer, reactor
from twisted.internet.task import Clock
from twisted.trial import unittest

from cmppsvc import keys
from cmppsvc.inflight import InFlightStore, is_done, queue_together, when_written
from cmppsvc.writebehind import WriteBehind
from tests.redisserver import start_redis

RECORD = {"id": "m1", "to": "13800000000", "segment": 1, "segments": 2, "parts": 2}


class InFlightStoreTests(unittest.TestCase):
    """Against a real redis-server."""

    timeout = 30

    @defer.inlineCallbacks
    def setUp(self):
        self.server, self.redis = yield start_redis(self, persistent=False)
        self.writer = WriteBehind(self.redis, reactor)
        self.store = InFlightStore(self.writer, self.redis, "c1")

    @defer.inlineCallbacks
    def test_intend_fires_once_written(self):
        second = dict(RECORD, segment=2)
        yield self.store.intend("1-0", {0: RECORD, 1: second})
        length = yield self.redis.execute_command("HLEN", keys.inflight("c1"))
        self.assertEqual(length, 2)
        loaded = yield self.store.load()
        self.assertEqual(loaded, {"1-0": {0: RECORD, 1: second}})

    @defer.inlineCallbacks
    def test_sent_done_and_delete(self):
        yield self.store.intend("1-0", {0: RECORD, 1: RECORD})
        self.store.sent("1-0", 0, dict(RECORD, seq=7, submitted=1.5))
        queue_together(self.writer, self.store.done_command("1-0", 1, 2))
        loaded = yield self.store.load()
        self.assertEqual(loaded["1-0"][0]["seq"], 7)
        self.assertTrue(is_done(loaded["1-0"][1]))
        self.assertFalse(is_done(loaded["1-0"][0]))

        queue_together(self.writer, self.store.delete_command("1-0", range(2)))
        loaded = yield self.store.load()
        self.assertEqual(loaded, {})

    @defer.inlineCallbacks
    def test_sent_record_waits_and_is_dropped_or_replaced(self):
        clock = Clock()
        writer = WriteBehind(self.redis, clock)
        store = InFlightStore(writer, self.redis, "c2", sent_delay=1.0)
        intended = store.intend("1-0", {0: RECORD, 1: RECORD})
        clock.advance(0)
        yield intended
        store.sent("1-0", 0, dict(RECORD, seq=7))
        store.sent("1-0", 0, dict(RECORD, seq=8))  # replaces the waiting one
        store.sent("1-0", 1, dict(RECORD, seq=9))
        store.drop_sent("1-0", 1)  # its outcome came
        self.assertEqual(writer.backlog, 0, "nothing queued yet")
        clock.advance(1.0)
        self.assertEqual(writer.backlog, 1, "one HSET, for part 0")
        written = writer.when_written(writer.written + 1)
        clock.advance(0)
        yield written
        flat = yield self.redis.execute_command("HGETALL", keys.inflight("c2"))
        records = dict(zip(flat[0::2], flat[1::2]))
        self.assertIn('"seq":8', records["1-0/0"])
        self.assertNotIn("seq", records["1-0/1"])
        writer.close()
        self.assertEqual(clock.getDelayedCalls(), [])

    @defer.inlineCallbacks
    def test_forget_parts(self):
        yield self.store.intend("1-0", {0: RECORD, 1: RECORD})
        self.store.forget_parts("1-0", [1])
        loaded = yield self.store.load()
        self.assertEqual(list(loaded["1-0"]), [0])

    @defer.inlineCallbacks
    def test_bad_records_are_skipped(self):
        yield self.redis.execute_command(
            "HSET",
            keys.inflight("c1"),
            "x",
            "{}",
            "9-0/1",
            "not json",
            "9-0/2",
            "[1]",
            "9-0/x",
            "{}",
            "/3",
            "{}",
        )
        yield self.store.intend("2-0", {0: {"id": "m"}})
        loaded = yield self.store.load()
        self.assertEqual(loaded, {"2-0": {0: {"id": "m"}}})

    @defer.inlineCallbacks
    def test_clear(self):
        yield self.store.intend("1-0", {0: RECORD})
        yield self.store.clear()
        loaded = yield self.store.load()
        self.assertEqual(loaded, {})


class QueueTogetherTests(unittest.SynchronousTestCase):
    """Commands queued together are never split across batches."""

    def test_one_item_one_serial(self):
        writer = WriteBehind(None, Clock(), max_batch=2)
        writer._send = lambda: None  # keep everything queued
        first = writer.queue("SET", "a", "1")
        together = queue_together(writer, ("SET", "b", "2"), ("SET", "c", "3"))
        self.assertEqual((first, together), (1, 2))
        self.assertEqual(writer.backlog, 2)

        parts, count, size = writer._take()
        self.assertEqual(size, 2)
        joined = b"".join(parts)
        for key in (b"a", b"b", b"c"):
            self.assertIn(b"\r\n" + key + b"\r\n", joined)
        # each command keeps its own argument count before it
        self.assertEqual(count, 3 * 4)

    def test_when_written_is_the_writers_own(self):
        writer = WriteBehind(None, Clock())
        writer._send = lambda: None  # keep everything queued
        serial = writer.queue("SET", "a", "1")
        d = when_written(writer, serial)
        self.assertNoResult(d)
        self.successResultOf(when_written(writer, 0))
