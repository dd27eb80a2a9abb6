# Lease keeper on a Clock, against an in-memory stand-in for Redis.
"""Take, renew, release, and the moment a lease counts as lost."""

import txredisapi
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from cmppsvc import keys
from cmppsvc.lease import RELEASE_SCRIPT, RENEW_SCRIPT, LeaseKeeper


class MemoryRedis:
    """SET NX PX, GET and the two lease scripts, with expiry on `clock`.

    `answering = False` leaves every command unanswered (Redis away).
    """

    def __init__(self, clock):
        self.clock = clock
        self.values = {}
        self.answering = True
        self.commands = []

    def _get(self, key):
        value, expires = self.values.get(key, (None, 0))
        if value is not None and self.clock.seconds() >= expires:
            del self.values[key]
            return None
        return value

    def execute_command(self, name, *arguments):
        self.commands.append(name)
        if not self.answering:
            return defer.Deferred()
        if name == "SET":
            key, value, _nx, _px, ttl_ms = arguments
            if self._get(key) is not None:
                return defer.succeed(None)
            self.values[key] = (value, self.clock.seconds() + ttl_ms / 1000)
            return defer.succeed("OK")
        if name == "GET":
            return defer.succeed(self._get(arguments[0]))
        script, count, *rest = arguments
        names, (owner, *options) = rest[:count], rest[count:]
        if script == RENEW_SCRIPT:
            renewed = []
            for key in names:
                held = self._get(key) == owner
                if held:
                    expires = self.clock.seconds() + int(options[0]) / 1000
                    self.values[key] = (owner, expires)
                renewed.append(int(held))
            return defer.succeed(renewed)
        (key,) = names
        if self._get(key) != owner:
            return defer.succeed(0)
        if script == RELEASE_SCRIPT:
            del self.values[key]
        return defer.succeed(1)


class FailingRedis:
    """Wraps a MemoryRedis; while `failing`, every command fails at once
    (the connection to Redis is lost)."""

    def __init__(self, redis):
        self.redis = redis
        self.failing = False

    def execute_command(self, *arguments):
        if self.failing:
            return defer.fail(txredisapi.ConnectionError("Lost connection"))
        return self.redis.execute_command(*arguments)


class LeaseKeeperTests(SynchronousTestCase):
    """One keeper, or two sharing the stand-in."""

    def setUp(self):
        self.clock = Clock()
        self.redis = MemoryRedis(self.clock)
        self.lost = []

    def keeper(self, owner="one", ttl=15.0):
        keeper = LeaseKeeper(
            self.redis,
            owner,
            self.clock,
            lambda channel, reason: self.lost.append((owner, channel, reason)),
            ttl=ttl,
        )
        keeper.start()
        self.addCleanup(keeper.halt)
        return keeper

    def test_only_one_owner_at_a_time(self):
        first, second = self.keeper("one"), self.keeper("two")
        self.assertTrue(self.successResultOf(first.acquire("c")))
        self.assertFalse(self.successResultOf(second.acquire("c")))
        self.assertEqual(self.successResultOf(second.owner_of("c")), "one")

    def test_renewal_keeps_the_lease_for_ever(self):
        first, second = self.keeper("one"), self.keeper("two")
        self.successResultOf(first.acquire("c"))
        self.clock.pump([1.0] * 100)
        self.assertTrue(first.holds("c"))
        self.assertFalse(self.successResultOf(second.acquire("c")))
        self.assertEqual(self.lost, [])

    def test_release_frees_it_at_once(self):
        first, second = self.keeper("one"), self.keeper("two")
        self.successResultOf(first.acquire("c"))
        self.successResultOf(first.release("c"))
        self.assertFalse(first.holds("c"))
        self.assertTrue(self.successResultOf(second.acquire("c")))

    def test_release_does_not_free_someone_elses_lease(self):
        first, second = self.keeper("one"), self.keeper("two")
        self.successResultOf(second.acquire("c"))
        self.successResultOf(first.release("c"))
        self.assertEqual(self.successResultOf(first.owner_of("c")), "two")

    def test_unanswered_renewals_lose_the_lease_before_it_expires(self):
        first, second = self.keeper("one", ttl=15.0), self.keeper("two", ttl=15.0)
        self.successResultOf(first.acquire("c"))
        self.redis.answering = False
        self.clock.advance(9.9)
        self.assertEqual(self.lost, [])

        self.clock.advance(0.2)
        self.assertEqual([(o, c) for o, c, _ in self.lost], [("one", "c")])
        self.assertFalse(first.holds("c"))
        # still held in Redis: nobody else can have started the channel yet
        self.redis.answering = True
        self.assertFalse(self.successResultOf(second.acquire("c")))
        self.clock.advance(5.0)
        self.assertTrue(self.successResultOf(second.acquire("c")))

    def test_a_lease_taken_over_is_lost_at_the_next_renewal(self):
        first = self.keeper("one")
        self.successResultOf(first.acquire("c"))
        self.redis.values[keys.lease("c")] = ("two", self.clock.seconds() + 15)
        self.clock.advance(first.renew_interval)
        self.assertEqual(len(self.lost), 1)
        self.assertIn("another process", self.lost[0][2])

    def test_halt_neither_releases_nor_reports(self):
        first, second = self.keeper("one"), self.keeper("two")
        self.successResultOf(first.acquire("c"))
        first.halt()
        self.clock.advance(14.9)
        self.assertFalse(self.successResultOf(second.acquire("c")))
        self.clock.advance(0.2)
        self.assertTrue(self.successResultOf(second.acquire("c")))
        self.assertEqual(self.lost, [])

    def test_one_script_run_renews_every_lease(self):
        first = self.keeper("one")
        for channel in ("a", "b", "c"):
            self.successResultOf(first.acquire(channel))
        del self.redis.commands[:]
        self.clock.advance(first.renew_interval)
        self.assertEqual(self.redis.commands, ["EVAL"])
        self.clock.pump([1.0] * 60)
        self.assertEqual(first.held(), ["a", "b", "c"])
        self.assertEqual(self.lost, [])

    def test_only_the_lease_taken_by_another_is_lost(self):
        first = self.keeper("one")
        for channel in ("a", "b"):
            self.successResultOf(first.acquire(channel))
        self.redis.values[keys.lease("a")] = ("two", self.clock.seconds() + 15)
        self.clock.advance(first.renew_interval)
        self.assertEqual([c for _, c, _ in self.lost], ["a"])
        self.assertEqual(first.held(), ["b"])

    def test_failing_renewals_are_retried_sooner_and_logged_once(self):
        failing = FailingRedis(self.redis)
        first = LeaseKeeper(failing, "one", self.clock, lambda *_: None, ttl=15.0)
        first.start()
        self.addCleanup(first.halt)
        self.successResultOf(first.acquire("c"))
        failing.failing = True
        warnings = []
        observer = warnings.append
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)

        self.clock.advance(first.renew_interval)
        for _ in range(3):
            self.clock.advance(first.retry_interval)
        failing.failing = False
        self.clock.advance(first.retry_interval)
        self.clock.pump([1.0] * 30)

        self.assertTrue(first.holds("c"))
        texts = [formatEvent(event) for event in warnings]
        self.assertEqual(len([t for t in texts if "renewal failed" in t]), 1)
        self.assertEqual(len([t for t in texts if "answered again" in t]), 1)

    def test_an_error_in_lost_does_not_stop_renewing(self):
        def lost(channel, reason):
            raise RuntimeError("boom")

        first = LeaseKeeper(self.redis, "one", self.clock, lost, ttl=15.0)
        first.start()
        self.addCleanup(first.halt)
        for channel in ("a", "b"):
            self.successResultOf(first.acquire(channel))
        self.redis.values[keys.lease("a")] = ("two", self.clock.seconds() + 15)
        self.clock.advance(first.renew_interval)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.clock.pump([1.0] * 60)
        self.assertEqual(first.held(), ["b"])

    def test_bad_settings_refused(self):
        with self.assertRaises(ValueError):
            LeaseKeeper(self.redis, "", self.clock, print)
        with self.assertRaises(ValueError):
            LeaseKeeper(self.redis, "x", self.clock, print, ttl=1.0, margin=1.0)
