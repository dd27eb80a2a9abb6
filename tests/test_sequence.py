# Tests for cmppsvc.sequence: blocks reserved ahead, wrap to 1, restart continuity.
from twisted.internet import defer, reactor, task
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from cmppsvc import keys
from cmppsvc.sequence import (
    ISequenceStore,
    MemorySequenceStore,
    RedisSequenceStore,
    SequenceAllocator,
    SequenceUnavailable,
    wire_seq,
)
from tests.redisserver import open_connection, start_redis


class ControlledStore:
    """A store whose reservations answer only when the test says so."""

    def __init__(self):
        self.high = 0
        self.requests = []

    def reserve(self, channel_id, count):
        d = defer.Deferred()
        self.requests.append((d, count))
        return d

    def answer(self):
        d, count = self.requests.pop(0)
        self.high += count
        d.callback(self.high)

    def fail(self):
        d, _count = self.requests.pop(0)
        d.errback(ConnectionError("Redis away"))


class AllocatorTests(unittest.SynchronousTestCase):
    """The allocator on a Clock and in-memory stores."""

    def test_stores_provide_the_interface(self):
        verifyObject(ISequenceStore, MemorySequenceStore())
        verifyObject(ISequenceStore, RedisSequenceStore(None))

    def test_wire_value_wraps_to_one_never_zero(self):
        self.assertEqual(wire_seq(1), 1)
        self.assertEqual(wire_seq(0xFFFFFFFF), 0xFFFFFFFF)
        self.assertEqual(wire_seq(0xFFFFFFFF + 1), 1)
        self.assertEqual(wire_seq(2 * 0xFFFFFFFF), 0xFFFFFFFF)

    def test_counts_up_across_blocks(self):
        allocator = SequenceAllocator(MemorySequenceStore(), "c", task.Clock(), 4)
        self.successResultOf(allocator.start())
        self.assertEqual([allocator.next() for _ in range(10)], list(range(1, 11)))

    def test_allocation_wraps_at_the_top(self):
        store = MemorySequenceStore()
        store.high["c"] = 0xFFFFFFFF - 2
        allocator = SequenceAllocator(store, "c", task.Clock(), 4)
        self.successResultOf(allocator.start())
        values = [allocator.next() for _ in range(5)]
        self.assertEqual(values, [0xFFFFFFFE, 0xFFFFFFFF, 1, 2, 3])

    def test_prefetches_at_half_and_raises_when_late(self):
        store = ControlledStore()
        allocator = SequenceAllocator(store, "c", task.Clock(), 4)
        started = allocator.start()
        store.answer()
        self.successResultOf(started)

        self.assertEqual([allocator.next(), allocator.next()], [1, 2])
        self.assertEqual(allocator.next(), 3)
        self.assertEqual(len(store.requests), 1, "prefetch once half is used")
        self.assertEqual(allocator.next(), 4)

        self.assertRaises(SequenceUnavailable, allocator.next)
        ready = allocator.ready()
        self.assertNoResult(ready)
        store.answer()
        self.successResultOf(ready)
        self.assertEqual(allocator.next(), 5)

    def test_failed_reservation_is_retried_on_the_clock(self):
        clock = task.Clock()
        store = ControlledStore()
        allocator = SequenceAllocator(store, "c", clock, 4)
        started = allocator.start()
        store.fail()
        self.assertNoResult(started)
        self.assertEqual(store.requests, [])

        clock.advance(1)
        store.answer()
        self.successResultOf(started)
        self.assertEqual(allocator.next(), 1)


class RedisSequenceTests(unittest.TestCase):
    """Against a real redis-server."""

    timeout = 30

    @defer.inlineCallbacks
    def test_new_allocator_continues_above_everything_handed_out(self):
        server, redis = yield start_redis(self)
        first = SequenceAllocator(RedisSequenceStore(redis), "c1", reactor, 10)
        self.addCleanup(first.stop)
        yield first.start()
        handed_out = [first.next() for _ in range(7)]
        yield task.deferLater(reactor, 0, lambda: None)

        # a crash: no orderly stop, Redis killed too
        yield redis.execute_command("BGREWRITEAOF")
        yield task.deferLater(reactor, 0.3, lambda: None)
        yield server.restart(crash=True)
        again = open_connection(self, server)

        second = SequenceAllocator(RedisSequenceStore(again), "c1", reactor, 10)
        yield second.start()
        self.addCleanup(second.stop)
        after = []
        while len(after) < 15:
            yield second.ready()
            after.append(second.next())
        self.assertGreater(min(after), max(handed_out))
        self.assertEqual(len(set(after)), 15)
        high = yield again.execute_command("GET", keys.sequence("c1"))
        self.assertGreaterEqual(int(high), max(after))
