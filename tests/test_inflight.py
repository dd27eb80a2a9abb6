# Tests for cmppsvc.inflight: in-flight submits recorded, removed, reloaded.
from twisted.internet import defer, reactor
from twisted.trial import unittest

from cmppsvc import keys
from cmppsvc.inflight import InFlightStore
from cmppsvc.writebehind import WriteBehind
from tests.redisserver import start_redis


class InFlightStoreTests(unittest.TestCase):
    """Against a real redis-server."""

    timeout = 30

    @defer.inlineCallbacks
    def setUp(self):
        self.server, self.redis = yield start_redis(self, persistent=False)
        self.writer = WriteBehind(self.redis, reactor)
        self.store = InFlightStore(self.writer, self.redis, "c1")

    @defer.inlineCallbacks
    def test_add_remove_load(self):
        record = {"id": "m1", "segment": 1, "segments": 2, "entry": "1-0"}
        self.store.add(7, record)
        self.store.add(8, dict(record, segment=2))
        self.store.remove(7)
        loaded = yield self.store.load()
        self.assertEqual(loaded, {8: dict(record, segment=2)})

    @defer.inlineCallbacks
    def test_bad_records_are_skipped(self):
        yield self.redis.execute_command(
            "HSET", keys.inflight("c1"), "x", "{}", "9", "not json", "10", "[1]"
        )
        self.store.add(11, {"id": "m"})
        loaded = yield self.store.load()
        self.assertEqual(loaded, {11: {"id": "m"}})

    @defer.inlineCallbacks
    def test_clear(self):
        self.store.add(1, {"id": "m"})
        yield self.store.clear()
        loaded = yield self.store.load()
        self.assertEqual(loaded, {})
