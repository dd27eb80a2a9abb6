"""A channel's written-behind items are skipped once another process holds
its lease, and applied while the lease is this process's or nobody's."""

from twisted.internet import defer, reactor
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.trial import unittest

from cmppsvc import keys
from cmppsvc.leasewrites import LeaseFencedWriter
from cmppsvc.writebehind import WriteBehind
from tests.redisserver import start_redis

CHANNEL = "7377309771234304"
OTHER = "4403009771234305"


class LeaseFencedWriterTests(unittest.TestCase):
    timeout = 30

    @defer.inlineCallbacks
    def setUp(self):
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)
        _server, self.redis = yield start_redis(self, persistent=False)
        self.writer = WriteBehind(self.redis, reactor)
        self.addCleanup(self.writer.close)
        self.ours = LeaseFencedWriter(self.writer, CHANNEL, "us:1")

    def warnings(self) -> list[str]:
        return [
            formatEvent(event)
            for event in self.events
            if event.get("log_namespace", "").startswith("cmppsvc.writebehind")
            and event.get("log_level") in (LogLevel.warn, LogLevel.error)
        ]

    @defer.inlineCallbacks
    def test_applied_while_the_lease_is_ours_or_nobodys(self):
        self.ours.queue("SET", "a", "1")
        yield self.redis.execute_command("SET", keys.lease(CHANNEL), "us:1")
        yield self.writer.flush()
        self.ours.queue_together(("SET", "b", "2"), ("RPUSH", "list", "x"))
        yield self.writer.flush()

        self.assertEqual((yield self.redis.execute_command("GET", "a")), "1")
        self.assertEqual((yield self.redis.execute_command("GET", "b")), "2")
        self.assertEqual((yield self.redis.execute_command("LLEN", "list")), 1)
        self.assertEqual(self.warnings(), [])

    @defer.inlineCallbacks
    def test_skipped_once_another_process_holds_the_lease(self):
        yield self.redis.execute_command("SET", keys.lease(CHANNEL), "them:2")
        theirs = LeaseFencedWriter(self.writer, OTHER, "us:1")
        self.writer.queue("SET", "before", "1")
        self.ours.queue_together(("SET", "b", "2"), ("RPUSH", "list", "x"))
        theirs.queue("SET", "other-channel", "1")
        self.ours.queue("SET", "c", "3")
        self.writer.queue("SET", "after", "1")
        yield self.writer.flush()

        for key, expected in (
            ("before", "1"),
            ("b", None),
            ("other-channel", "1"),
            ("c", None),
            ("after", "1"),
        ):
            self.assertEqual(
                (yield self.redis.execute_command("GET", key)), expected, key
            )
        self.assertEqual((yield self.redis.execute_command("LLEN", "list")), 0)
        [warning] = self.warnings()
        self.assertIn("2 written-behind items skipped", warning)
        self.assertIn("leased by another process", warning)

    @defer.inlineCallbacks
    def test_a_refused_command_after_a_skipped_item_is_named_right(self):
        yield self.redis.execute_command("SET", keys.lease(CHANNEL), "them:2")
        yield self.redis.execute_command("SET", "text", "x")
        self.ours.queue_together(("SET", "b", "2"), ("INCR", "text"))
        self.writer.queue("HSET", "text", "f", "v")
        yield self.writer.flush()

        errors = [line for line in self.warnings() if "refused" in line]
        self.assertEqual(len(errors), 1)
        self.assertIn("command=HSET", errors[0])
