# Tests for cmppsvc.status: coalesced channel status hashes.
from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from cmppsvc import status
from cmppsvc.status import StatusWriter
from cmppsvc.writebehind import WriteBehind
from tests.redisserver import start_redis
from tests.test_writebehind import FakeConnection


class StatusCoalescingTests(unittest.SynchronousTestCase):
    """Repeated updates within a batch become one HSET."""

    def test_updates_coalesce(self):
        clock = task.Clock()
        connection = FakeConnection()
        writer = WriteBehind(connection, clock, interval=0.01)
        statuses = StatusWriter(writer)
        for count in range(5):
            statuses.update("c1", {"state": "connected", "sent": count})
        statuses.update("c2", {"state": "down"})
        clock.advance(0.01)

        written = connection.transport.value()
        self.assertEqual(written.count(b"HSET"), 2)
        self.assertIn(b"$4\r\nsent\r\n$1\r\n4\r\n", written)
        self.assertNotIn(b"$4\r\nsent\r\n$1\r\n3\r\n", written)


class StatusRedisTests(unittest.TestCase):
    """Against a real redis-server."""

    timeout = 30

    @defer.inlineCallbacks
    def test_update_then_read(self):
        server, redis = yield start_redis(self, persistent=False)
        writer = WriteBehind(redis, reactor)
        statuses = StatusWriter(writer)
        statuses.update("c1", {"state": "connecting"})
        statuses.update("c1", {"state": "connected", "last_error": "none", "sent": 3})
        yield writer.flush()

        read = yield status.read(redis, "c1")
        self.assertEqual(
            read, {"state": "connected", "last_error": "none", "sent": "3"}
        )
        empty = yield StatusWriter.read(redis, "nothing")
        self.assertEqual(empty, {})
