# Tests for cmppsvc.runtime and the twistd options of cmppsvc.tap.
"""The process service: a stop during a start that cannot finish is prompt
and clean; a stop with Redis gone is bounded; options reach the stores."""

from __future__ import annotations

from twisted.internet import defer, reactor
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from cmppsvc.localredis import free_port
from cmppsvc.redisconn import RedisAddress
from cmppsvc.runtime import CmppService
from cmppsvc.tap import Options, makeService
from tests.redisserver import start_redis

#: Far longer than a test may run: a stop that waited for it would time out.
NEVER = 3600.0


class StopDuringStartTests(TestCase):
    """Redis unreachable at start (a closed loopback port)."""

    timeout = 15

    @defer.inlineCallbacks
    def test_stop_before_redis_answers_cancels_the_start(self):
        address = RedisAddress.from_url(f"redis://127.0.0.1:{free_port()}")
        service = CmppService(
            address, reactor, consumer_name="runtime-test", stop_timeout=NEVER
        )
        service.startService()
        started = service.whenStarted()

        yield service.stopService()

        self.failureResultOf(started, defer.CancelledError)
        self.assertFalse(service.running)
        self.assertEqual(len(service.collection or ()), 0)
        # a late waiter learns the start did not happen
        self.failureResultOf(service.whenStarted(), defer.CancelledError)

    @defer.inlineCallbacks
    def test_stop_right_after_start(self):
        address = RedisAddress.from_url(f"redis://127.0.0.1:{free_port()}")
        service = CmppService(address, reactor, stop_timeout=NEVER)
        service.startService()
        yield service.stopService()
        self.assertFalse(service.running)


class StopWithoutRedisTests(TestCase):
    """Redis goes away under a running service: the stop still ends."""

    timeout = 30

    @defer.inlineCallbacks
    def test_queued_writes_are_given_up_after_the_stop_timeout(self):
        server, _redis = yield start_redis(self)
        service = CmppService(
            RedisAddress.from_url(server.url), reactor, stop_timeout=0.5
        )
        service.startService()
        yield service.whenStarted()

        yield server.kill()
        service.stores.writer.queue("SET", "never-written", "1")
        yield service.stopService()

        self.assertFalse(service.running)
        self.assertEqual(service.stores.writer.backlog, 1)


class OptionTests(SynchronousTestCase):
    """`twistd cmppsvc` options: parsed, checked, documented."""

    def parse(self, *arguments: str) -> Options:
        options = Options()
        options.parseOptions(list(arguments))
        return options

    def test_defaults_are_the_modules_defaults(self):
        options = self.parse()
        self.assertEqual(options["write-batch"], 1000)
        self.assertEqual(options["write-interval"], 0.0)
        self.assertEqual(options["msgid-ttl"], 72 * 3600)
        self.assertEqual(options["events-maxlen"], 1_000_000)

    def test_out_of_range_values_are_refused(self):
        for arguments in (
            ["--write-batch", "0"],
            ["--write-interval", "-1"],
            ["--msgid-ttl", "1"],
            ["--events-maxlen", "10"],
            ["--lease-ttl", "0"],
            ["--rescan-interval", "-1"],
        ):
            with self.assertRaises(usage.UsageError, msg=arguments):
                self.parse(*arguments)

    def test_every_option_is_documented(self):
        for name, _short, _default, text, *_ in Options.optParameters:
            self.assertGreater(len(text), 20, name)


class OptionsReachTheStoresTests(TestCase):
    """Options given to makeService end in the stores the channels use."""

    timeout = 30

    @defer.inlineCallbacks
    def test_stores_built_from_options(self):
        server, _redis = yield start_redis(self)
        options = Options()
        options.parseOptions(
            [
                "--redis",
                server.url,
                "--write-batch",
                "50",
                "--write-interval",
                "0.01",
                "--msgid-ttl",
                "3600",
                "--events-maxlen",
                "5000",
                "--lease-ttl",
                "6",
            ]
        )
        service = makeService(options)
        service.startService()
        self.addCleanup(lambda: service.running and service.stopService())
        yield service.whenStarted()

        stores = service.stores
        self.assertEqual(stores.writer.max_batch, 50)
        self.assertEqual(stores.writer.interval, 0.01)
        self.assertEqual(stores.msgindex.ttl_ms, 3_600_000)
        self.assertEqual(stores.events.maxlen, 5000)
        self.assertEqual(service.collection.leases.ttl, 6.0)
