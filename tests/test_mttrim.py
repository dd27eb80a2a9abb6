"""Finished MT entries leave their stream; unread and pending ones never do."""

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from cmppsvc import keys
from cmppsvc.mttrim import trim_stream
from tests.redisserver import start_redis

CHANNEL = "c1"
STREAM = keys.mt_stream(CHANNEL)
GROUP = keys.MT_GROUP


class TrimTests(TestCase):
    timeout = 30

    @defer.inlineCallbacks
    def setUp(self):
        self.server, self.redis = yield start_redis(self, persistent=False)

    @defer.inlineCallbacks
    def add(self, count: int) -> list[str]:
        ids = []
        for index in range(count):
            ids.append(
                (yield self.redis.execute_command("XADD", STREAM, "*", "n", index))
            )
        return ids

    @defer.inlineCallbacks
    def read(self, count: int) -> list[str]:
        reply = yield self.redis.execute_command(
            "XREADGROUP", "GROUP", GROUP, "me", "COUNT", count, "STREAMS", STREAM, ">"
        )
        return [entry_id for entry_id, _fields in reply[0][1]]

    @defer.inlineCallbacks
    def left(self) -> list[str]:
        reply = yield self.redis.execute_command("XRANGE", STREAM, "-", "+")
        return [entry_id for entry_id, _fields in reply]

    @defer.inlineCallbacks
    def test_acknowledged_go_pending_and_unread_stay(self):
        yield self.redis.execute_command(
            "XGROUP", "CREATE", STREAM, GROUP, "0", "MKSTREAM"
        )
        ids = yield self.add(1000)
        read = yield self.read(800)
        yield self.redis.execute_command("XACK", STREAM, GROUP, *read[:600])

        trimmed = yield trim_stream(self.redis, CHANNEL)
        left = yield self.left()
        self.assertGreater(trimmed, 0)
        self.assertEqual(len(left) + trimmed, 1000)
        # Whole nodes only: what is left starts at most a node before the
        # oldest pending entry, and holds every pending and unread entry.
        self.assertTrue(set(ids[600:]) <= set(left))
        self.assertLessEqual(len(left), 400 + 100)

    @defer.inlineCallbacks
    def test_nothing_pending_trims_what_was_read(self):
        yield self.redis.execute_command(
            "XGROUP", "CREATE", STREAM, GROUP, "0", "MKSTREAM"
        )
        ids = yield self.add(500)
        read = yield self.read(300)
        yield self.redis.execute_command("XACK", STREAM, GROUP, *read)

        yield trim_stream(self.redis, CHANNEL)
        left = yield self.left()
        self.assertTrue(set(ids[300:]) <= set(left), "unread entries stay")
        self.assertLessEqual(len(left), 200 + 100)

    @defer.inlineCallbacks
    def test_a_stream_or_group_that_is_not_there_is_left_alone(self):
        self.assertEqual((yield trim_stream(self.redis, CHANNEL)), 0)
        yield self.add(3)
        self.assertEqual((yield trim_stream(self.redis, CHANNEL)), 0)
        self.assertEqual(len((yield self.left())), 3)

    @defer.inlineCallbacks
    def test_huge_sequence_numbers_are_compared_not_computed(self):
        # Small nodes, so that the approximate trim has whole nodes to drop.
        yield self.redis.execute_command("CONFIG", "SET", "stream-node-max-entries", 4)
        yield self.redis.execute_command(
            "XGROUP", "CREATE", STREAM, GROUP, "0", "MKSTREAM"
        )
        ids = [f"5-{2**55 + n}" for n in range(8)]
        for entry_id in ids:
            yield self.redis.execute_command("XADD", STREAM, entry_id, "n", "x")
        read = yield self.read(6)
        yield self.redis.execute_command("XACK", STREAM, GROUP, *read)

        yield trim_stream(self.redis, CHANNEL)
        left = yield self.left()
        self.assertTrue(set(ids[6:]) <= set(left), "unread entries stay")
