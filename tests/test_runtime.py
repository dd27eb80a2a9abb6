# Tests for cmppsvc.runtime and the twistd options of cmppsvc.tap.
"""The process service: a stop during a start that cannot finish is prompt
and clean; a stop with Redis gone is bounded; options reach the stores."""

from __future__ import annotations

import shutil
import socket

from twisted.internet import defer, reactor
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel, globalLogPublisher
from twisted.python import usage
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase

from cmppsvc.localredis import free_port
from cmppsvc.redisconn import RedisAddress
from cmppsvc.runtime import CmppService
from cmppsvc.tap import (
    START_FAILED_STATUS,
    Options,
    ProcessCmppService,
    end_process,
    makeService,
)
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
            ["--consumer", "cmppsvc:released"],
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


class FailedStartEndsTheProcessTests(TestCase):
    """`twistd cmppsvc` whose private Redis cannot start: one line, exit."""

    timeout = 15

    def setUp(self):
        self.statuses: list[int] = []
        self.events: list[dict] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def test_a_private_redis_lost_for_good_ends_the_process(self):
        service = ProcessCmppService(None, reactor, end=self.statuses.append)
        service._private_redis_lost()
        self.assertEqual(self.statuses, [START_FAILED_STATUS])
        (line,) = [e for e in self.events if e["log_level"] == LogLevel.critical]
        self.assertIn("port taken", line["log_format"])

    @defer.inlineCallbacks
    def test_port_in_use_is_one_error_line_then_the_end(self):
        if shutil.which("redis-server") is None:
            raise SkipTest("redis-server is not installed")
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            service = ProcessCmppService(
                None,
                reactor,
                redis_directory=self.mktemp(),
                redis_port=port,
                end=self.statuses.append,
            )
            service.startService()
            yield service.stopService()

        self.assertEqual(self.statuses, [START_FAILED_STATUS])
        ours = [e for e in self.events if e.get("log_namespace", "").startswith("cmpp")]
        (line,) = [e for e in ours if e["log_level"] >= LogLevel.warn]
        self.assertEqual(line["log_level"], LogLevel.error)
        self.assertNotIn("log_failure", line)
        self.assertIn(
            f"port {port} on 127.0.0.1 is already in use", str(line["reason"])
        )
        self.assertIn("--redis-port", str(line["reason"]))
        self.assertFalse(any("stopped" in e.get("log_format", "") for e in ours))

    @defer.inlineCallbacks
    def test_a_stop_during_the_start_does_not_end_the_process(self):
        address = RedisAddress.from_url(f"redis://127.0.0.1:{free_port()}")
        service = ProcessCmppService(
            address, reactor, stop_timeout=NEVER, end=self.statuses.append
        )
        service.startService()
        yield service.stopService()
        self.assertEqual(self.statuses, [])

    @defer.inlineCallbacks
    def test_a_stop_while_the_private_redis_starts_ends_it(self):
        if shutil.which("redis-server") is None:
            raise SkipTest("redis-server is not installed")
        service = ProcessCmppService(
            None,
            reactor,
            redis_directory=self.mktemp(),
            redis_port=free_port(),
            end=self.statuses.append,
        )
        service.startService()
        yield service.stopService()

        self.assertFalse(service.local_redis.running)
        self.assertEqual(self.statuses, [])


class EndProcessTests(SynchronousTestCase):
    """`end_process`: reactor stopped, then the exit status after shutdown."""

    def test_stops_the_reactor_then_exits_with_the_status(self):
        fake_reactor = MemoryReactorClock()
        exits: list[int] = []
        end_process(fake_reactor, 3, exit_process=exits.append)
        self.assertEqual(exits, [])

        fake_reactor.run()  # a start can fail before the reactor runs
        self.assertTrue(fake_reactor.hasStopped)
        self.assertEqual(exits, [])

        for trigger, args, kwargs in fake_reactor.triggers["after"]["shutdown"]:
            trigger(*args, **kwargs)
        self.assertEqual(exits, [3])
