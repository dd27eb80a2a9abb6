# Tests for cmppsvc.msgindex: Msg_Id entries, early reports, duplicate reports.
from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from cmppsvc import keys
from cmppsvc.msgindex import MsgIdIndex
from cmppsvc.writebehind import WriteBehind, WriteBehindFull
from tests.redisserver import start_redis

MSG_ID = 0xFEDCBA9876543210
ENTRY = {"id": "007", "segment": 1, "segments": 2, "channel": "c1"}
TEXT_ENTRY = {"id": "007", "segment": "1", "segments": "2", "channel": "c1"}


class RedisIndexTestCase(unittest.TestCase):
    """An index on a real redis-server whose writes stay queued until flushed."""

    timeout = 30

    @defer.inlineCallbacks
    def setUp(self):
        self.server, self.redis = yield start_redis(self, persistent=False)
        # a long interval: writes stay queued until flushed explicitly
        self.writer = WriteBehind(self.redis, reactor, interval=60)
        self.addCleanup(self.writer.stop)
        self.index = MsgIdIndex(self.writer, self.redis, reactor, ttl=3600)


class MsgIdIndexTests(RedisIndexTestCase):
    """Against a real redis-server."""

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
        self.assertEqual(self.writer.backlog, 0)
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

    def counted_in_redis(self):
        """Record the script runs of the report path."""
        runs = []
        original = self.redis.eval

        def counting_eval(*arguments):
            runs.append(arguments)
            return original(*arguments)

        self.redis.eval = counting_eval
        return runs

    @defer.inlineCallbacks
    def test_reports_of_entries_indexed_here_need_no_round_trip(self):
        runs = self.counted_in_redis()
        self.index.put(MSG_ID, ENTRY)  # still queued: matched from memory
        first = self.index.report(MSG_ID)
        second = self.index.report(MSG_ID)
        results = yield defer.gatherResults([first, second])
        self.assertEqual(results, [(TEXT_ENTRY, True), (TEXT_ENTRY, False)])
        self.assertEqual(runs, [])

        # The count is written behind, after the entry, keeping its expiry.
        yield self.writer.flush()
        key = keys.msgid(str(MSG_ID))
        count = yield self.redis.execute_command("HGET", key, "reported")
        ttl = yield self.redis.execute_command("PTTL", key)
        self.assertEqual(count, "2")
        self.assertTrue(0 < ttl <= 3600 * 1000)

    @defer.inlineCallbacks
    def test_a_count_alone_expires(self):
        self.index.put(MSG_ID, ENTRY)
        yield self.writer.flush()
        key = keys.msgid(str(MSG_ID))
        yield self.redis.execute_command("DEL", key)  # Redis lost its data
        yield self.index.report(MSG_ID)
        yield self.writer.flush()
        ttl = yield self.redis.execute_command("PTTL", key)
        self.assertTrue(0 < ttl <= 3600 * 1000)

    @defer.inlineCallbacks
    def test_report_of_another_processes_entry_is_counted_in_redis(self):
        runs = self.counted_in_redis()
        other = MsgIdIndex(
            WriteBehind(self.redis, reactor), self.redis, reactor, ttl=3600
        )
        other.put(MSG_ID, ENTRY)
        yield other.writer.flush()
        first = self.index.report(MSG_ID)
        second = self.index.report(MSG_ID + 1)  # unknown everywhere
        self.assertEqual((yield first), (TEXT_ENTRY, True))
        again = yield self.index.report(MSG_ID)
        self.assertEqual(again, (TEXT_ENTRY, False))
        self.assertEqual(len(runs), 2, "one script run per batch")
        self.index.report_retry_delays = ()
        self.assertEqual((yield second), (None, True))
        exists = yield self.redis.execute_command("EXISTS", keys.msgid(str(MSG_ID + 1)))
        self.assertEqual(exists, 0, "an unknown Msg_Id leaves no key")

    @defer.inlineCallbacks
    def test_a_stopped_channels_reports_are_counted_in_redis(self):
        self.index.put(MSG_ID, ENTRY)
        self.index.put(MSG_ID + 1, {**ENTRY, "channel": "c2"})
        self.assertEqual((yield self.index.report(MSG_ID)), (TEXT_ENTRY, True))
        yield self.writer.flush()

        self.index.forget_channel("c1")
        runs = self.counted_in_redis()
        again = yield self.index.report(MSG_ID)
        self.assertEqual(again, (TEXT_ENTRY, False), "the count written here")
        self.assertEqual(len(runs), 1)
        other_channel = yield self.index.report(MSG_ID + 1)
        self.assertEqual(other_channel[1], True)
        self.assertEqual(len(runs), 1, "c2's entries are still known here")

        # The channel's next run here counts its new entries here again.
        self.index.put(MSG_ID + 2, ENTRY)
        self.assertEqual((yield self.index.report(MSG_ID + 2)), (TEXT_ENTRY, True))
        self.assertEqual(len(runs), 1)

    @defer.inlineCallbacks
    def test_report_waits_for_another_processes_index_write(self):
        other_writer = WriteBehind(self.redis, reactor, interval=0.2)
        other = MsgIdIndex(other_writer, self.redis, reactor)
        found = self.index.report(MSG_ID)
        other.put(MSG_ID, ENTRY)
        result = yield found
        self.assertEqual(result, (TEXT_ENTRY, True))


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

    def test_report_for_an_unknown_msg_id_retries_with_backoff(self):
        clock = task.Clock()
        runs = []

        class ScriptRedis:
            def eval(self, script, names, arguments):
                runs.append(names)
                return defer.succeed([[0] for _ in names])

        writer = WriteBehind(ScriptRedis(), clock)
        index = MsgIdIndex(writer, ScriptRedis(), clock, report_retry_delays=(1, 2, 4))
        result = index.report(42)
        clock.advance(0)
        self.assertEqual(runs, [[keys.msgid("42")]])
        for delay in (1, 2):
            clock.advance(delay)
            clock.advance(0)
            self.assertNoResult(result)
        clock.advance(4)
        clock.advance(0)
        self.assertEqual(self.successResultOf(result), (None, True))
        self.assertEqual(len(runs), 4, "first try and three retries")

    def test_old_entries_are_left_to_redis(self):
        clock = task.Clock()
        runs = []

        class ScriptRedis:
            def eval(self, script, names, arguments):
                runs.append(names)
                return defer.succeed([[2, "id", "007"] for _ in names])

        writer = WriteBehind(ScriptRedis(), clock, interval=60)
        index = MsgIdIndex(writer, ScriptRedis(), clock, ttl=100)
        index.put(1, ENTRY)
        fresh = index.report(1)
        clock.advance(0)
        self.assertEqual(self.successResultOf(fresh), (TEXT_ENTRY, True))
        self.assertEqual(runs, [])
        clock.advance(51)
        old = index.report(1)
        clock.advance(0)
        self.assertEqual(runs, [[keys.msgid("1")]], "past half its TTL: Redis")
        self.assertEqual(self.successResultOf(old), ({"id": "007"}, False))

    def test_a_full_write_queue_fails_the_report_uncounted(self):
        clock = task.Clock()

        class Silent:
            def eval(self, script, names, arguments):
                return defer.Deferred()

        writer = WriteBehind(Silent(), clock, interval=60, max_queue=1)
        index = MsgIdIndex(writer, Silent(), clock)
        index.put(1, ENTRY)  # the queue is full now
        failure = self.failureResultOf(index.report(1), WriteBehindFull)
        self.assertIsNotNone(failure)
        self.assertEqual(index._recent[1][1], 0, "not counted")


class HotPathTests(RedisIndexTestCase):
    """The callback API and the entries queued by the caller."""

    @defer.inlineCallbacks
    def test_queued_by_the_caller_then_matched_with_callbacks(self):
        self.writer.queue_together(*self.index.put_commands(MSG_ID, ENTRY))
        yield self.writer.flush()

        answers = []
        done = defer.Deferred()

        def matched(result, tag):
            answers.append((result, tag))
            if len(answers) == 2:
                done.callback(None)

        self.index.report_with_callbacks(MSG_ID, matched, done.errback, "first")
        self.index.report_with_callbacks(MSG_ID, matched, done.errback, "again")
        yield done
        self.assertEqual(
            answers, [((TEXT_ENTRY, True), "first"), ((TEXT_ENTRY, False), "again")]
        )
        ttl = yield self.redis.execute_command("PTTL", keys.msgid(str(MSG_ID)))
        self.assertTrue(0 < ttl <= 3600 * 1000)

    @defer.inlineCallbacks
    def test_a_failing_callback_does_not_cost_the_others_their_answer(self):
        self.index.put(MSG_ID, ENTRY)
        self.index.put(MSG_ID + 1, ENTRY)
        answers = []

        def explode(result):
            raise RuntimeError("boom")

        done = defer.Deferred()
        self.index.report_with_callbacks(MSG_ID, explode, done.errback)
        self.index.report_with_callbacks(
            MSG_ID + 1,
            lambda result: done.callback(answers.append(result)),
            done.errback,
        )
        yield done
        self.assertEqual(answers, [(TEXT_ENTRY, True)])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
