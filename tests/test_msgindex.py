# Tests for cmppsvc.msgindex: Msg_Id entries, early reports, duplicate reports.
from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from cmppsvc import keys
from cmppsvc.msgindex import MsgIdIndex
from cmppsvc.writebehind import WriteBehind
from tests.redisserver import start_redis

MSG_ID = 0xFEDCBA9876543210
ENTRY = {"id": "007", "segment": 1, "segments": 2, "channel": "c1"}
TEXT_ENTRY = {"id": "007", "segment": "1", "segments": "2", "channel": "c1"}


class MsgIdIndexTests(unittest.TestCase):
    """Against a real redis-server."""

    timeout = 30

    @defer.inlineCallbacks
    def setUp(self):
        self.server, self.redis = yield start_redis(self, persistent=False)
        # a long interval: writes stay queued until flushed explicitly
        self.writer = WriteBehind(self.redis, reactor, interval=60)
        self.addCleanup(self.writer.stop)
        self.index = MsgIdIndex(self.writer, self.redis, reactor, ttl=3600)

    @defer.inlineCallbacks
    def test_report_before_the_index_write_is_found(self):
        self.index.put(MSG_ID, ENTRY)
        entry = yield self.index.lookup(MSG_ID)
        self.assertEqual(entry, TEXT_ENTRY)
        stored = yield self.redis.execute_command("EXISTS", keys.msgid(str(MSG_ID)))
        self.assertEqual(stored, 0, "still only in the queue")

    @defer.inlineCallbacks
    def test_lookup_after_flush_reads_redis_with_ttl(self):
        self.index.put(MSG_ID, ENTRY)
        yield self.writer.flush()
        self.assertEqual(self.index._unwritten, {})
        entry = yield self.index.lookup(MSG_ID)
        self.assertEqual(entry, TEXT_ENTRY)
        ttl = yield self.redis.execute_command("PTTL", keys.msgid(str(MSG_ID)))
        self.assertTrue(0 < ttl <= 3600 * 1000)

    @defer.inlineCallbacks
    def test_lookup_waits_for_another_process(self):
        other_writer = WriteBehind(self.redis, reactor, interval=0.01)
        other = MsgIdIndex(other_writer, self.redis, reactor)
        found = self.index.lookup(MSG_ID)
        other.put(MSG_ID, ENTRY)
        entry = yield found
        self.assertEqual(entry, TEXT_ENTRY)

    @defer.inlineCallbacks
    def test_duplicate_report(self):
        self.index.put(MSG_ID, ENTRY)
        first = yield self.index.mark_reported(MSG_ID)
        second = yield self.index.mark_reported(MSG_ID)
        self.assertEqual((first, second), (True, False))
        entry = yield self.index.lookup(MSG_ID)
        self.assertEqual(entry, TEXT_ENTRY)

    @defer.inlineCallbacks
    def test_report_for_unknown_msg_id_expires(self):
        first = yield self.index.mark_reported(5)
        self.assertTrue(first)
        ttl = yield self.redis.execute_command("PTTL", keys.msgid("5"))
        self.assertGreater(ttl, 0)


class MsgIdIndexClockTests(unittest.SynchronousTestCase):
    """The bounded wait before answering None, on a Clock."""

    def test_unknown_msg_id_answers_none_after_bounded_retries(self):
        clock = task.Clock()
        reads = []

        class EmptyRedis:
            def execute_command(self, *arguments):
                reads.append(arguments)
                return defer.succeed([])

        writer = WriteBehind(EmptyRedis(), clock)
        index = MsgIdIndex(writer, EmptyRedis(), clock, lookup_retry_delays=(1, 2))
        result = index.lookup(42)
        self.assertNoResult(result)
        clock.advance(1)
        self.assertNoResult(result)
        clock.advance(2)
        self.assertIsNone(self.successResultOf(result))
        self.assertEqual(len(reads), 3)
