# Tests for the bounded stop of cmppsvc.channel, cmppsvc.collection and
# cmppsvc.runtime while Redis is unreachable.
"""A stop ends whatever Redis does, says in the log what it gave up, and
still writes everything when Redis answers."""

from __future__ import annotations

import os
import signal

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from cmppsvc import keys
from cmppsvc.channel import ChannelService, SharedStores
from cmppsvc.codec import Terminate, TerminateResp
from cmppsvc.collection import ChannelCollection
from cmppsvc.config import parse_channel_record
from cmppsvc.lease import RELEASE_SCRIPT
from cmppsvc.runtime import CmppService
from cmppsvc.sequence import MemorySequenceStore
from tests.endtoend import wait_for
from tests.redisserver import start_redis
from tests.test_collection_support import (
    channel_ids,
    record,
    start_service,
    start_simulator,
)
from tests.test_protocol_support import PASSWORD, FakeEndpoint

#: Bound of each wait on Redis in the Clock tests (seconds).
STOP_TIMEOUT = 5.0

(CHANNEL,) = channel_ids(1)


class MemoryRedis:
    """The commands a collection and a starting channel send, in memory.

    While `answering` is False every command waits, as with a Redis that is
    stopped or unreachable; `answer_waiting()` answers them.
    """

    def __init__(self) -> None:
        self.values: dict[str, object] = {}
        self.answering = True
        self.waiting: list[tuple[defer.Deferred, str, tuple]] = []

    def get(self, key: str) -> defer.Deferred:
        return self.execute_command("GET", key)

    def execute_command(self, name: str, *arguments: object) -> defer.Deferred:
        if not self.answering:
            waiting: defer.Deferred = defer.Deferred()
            self.waiting.append((waiting, name, arguments))
            return waiting
        return defer.succeed(self._reply(name, arguments))

    def answer_waiting(self) -> None:
        self.answering = True
        waiting, self.waiting = self.waiting, []
        for deferred, name, arguments in waiting:
            deferred.callback(self._reply(name, arguments))

    def _reply(self, name: str, arguments: tuple) -> object:
        values = self.values
        if name == "SCAN":
            prefix = keys.channel_info("")
            return [0, [key for key in values if key.startswith(prefix)]]
        if name == "GET":
            return values.get(arguments[0])
        if name == "SET":
            key, owner = arguments[:2]
            return None if key in values else values.setdefault(key, owner) and "OK"
        if name == "EVAL":
            script, count, *rest = arguments
            if script != RELEASE_SCRIPT:  # renewal
                return [1] * count
            key, owner = rest
            return int(values.pop(key) == owner) if key in values else 0
        if name == "HGETALL":
            return {}
        if name == "XPENDING":
            return [0, None, None, []]
        return 0  # SISMEMBER, HLEN, EXISTS


class MemoryWriter:
    """The write-behind queue: writes at once while Redis answers; while it
    does not, they wait (`stalled` makes them wait with Redis answering)."""

    def __init__(self, redis: MemoryRedis) -> None:
        self.redis = redis
        self.stalled = False
        self.queued = 0
        self.written = 0
        self._flushes: list[defer.Deferred] = []

    @property
    def backlog(self) -> int:
        return self.queued - self.written

    def _writing(self) -> bool:
        return self.redis.answering and not self.stalled

    def queue(self, *arguments: object) -> int:
        self.queued += 1
        if self._writing():
            self.written = self.queued
        return self.queued

    def queue_together(self, *commands: object) -> int:
        return self.queue(*commands)

    def flush(self) -> defer.Deferred:
        if self._writing() or not self.backlog:
            self.written = self.queued
            return defer.succeed(None)
        flushing: defer.Deferred = defer.Deferred()
        self._flushes.append(flushing)
        return flushing

    def write_waiting(self) -> None:
        self.stalled = False
        self.written = self.queued
        flushes, self._flushes = self._flushes, []
        for flushing in flushes:
            flushing.callback(None)


class MemoryStatus:
    def __init__(self, writer: MemoryWriter) -> None:
        self.writer = writer

    def update(self, channel_id: str, fields: dict) -> None:
        self.writer.queue("HSET", keys.status(channel_id), fields)


class MemoryEvents:
    def __init__(self, writer: MemoryWriter) -> None:
        self.writer = writer

    def emit(self, event: dict) -> None:
        self.writer.queue("XADD", keys.EVENTS, event)


class QuietIndex:
    def forget_channel(self, channel_id: str) -> None:
        pass


class IdleReader:
    """An MT reader with no entries."""

    consumer_name = "test"

    def __init__(self) -> None:
        self.channels: set[str] = set()

    def add_channel(self, channel_id: str, *arguments: object, **options) -> None:
        self.channels.add(channel_id)

    def remove_channel(self, channel_id: str) -> None:
        self.channels.discard(channel_id)

    def wake(self) -> None:
        pass


class LogCapture:
    """Every log event while a test runs."""

    def capture_log(self) -> list[dict]:
        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        return events

    def warnings(self, events: list[dict], namespace: str = "cmppsvc") -> list[str]:
        return [
            formatEvent(event)
            for event in events
            if event["log_level"] >= LogLevel.warn
            and event.get("log_namespace", "").startswith(namespace)
        ]

    def assert_no_password(self, events: list[dict]) -> None:
        for event in events:
            self.assertNotIn(PASSWORD, formatEvent(event) + repr(event))


class ClockStopTestCase(LogCapture, SynchronousTestCase):
    """A channel on an in-memory gateway and in-memory Redis, on a Clock."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.redis = MemoryRedis()
        self.writer = MemoryWriter(self.redis)
        self.stores = SharedStores(
            redis=self.redis,
            writer=self.writer,
            events=MemoryEvents(self.writer),
            msgindex=QuietIndex(),
            status=MemoryStatus(self.writer),
            mt_reader=IdleReader(),
            sequence_store=MemorySequenceStore(),
        )
        self.endpoint = FakeEndpoint(self.clock)
        self.raw_record = record(CHANNEL, "a0", 7890, passpwd=PASSWORD)
        self.redis.values[keys.channel_info(CHANNEL)] = self.raw_record
        self.events = self.capture_log()

    def run_until_fired(self, waiting: defer.Deferred, bound: float) -> float:
        """Advance the clock a second at a time until `waiting` fires (at
        most `bound` seconds); return the seconds it took."""
        fired: list = []
        waiting.addBoth(fired.append)
        started = self.clock.seconds()
        while not fired and self.clock.seconds() - started <= bound:
            self.clock.advance(1)
        self.assertEqual(fired, [None])
        return self.clock.seconds() - started

    def answer_terminate(self) -> None:
        """The gateway answers the channel's TERMINATE; the link closes."""
        gateway = self.endpoint.gateway
        (terminate,) = [p for p in gateway.received() if isinstance(p, Terminate)]
        gateway.send(TerminateResp(seq=terminate.seq))
        self.clock.advance(0)

    def assert_clock_idle(self) -> None:
        """Nothing is left scheduled: every timer was cancelled."""
        self.assertEqual(self.clock.getDelayedCalls(), [])


class ChannelStopTests(ClockStopTestCase):
    """ChannelService.stopService: its last flush waits `flush_timeout`."""

    def running_channel(self) -> ChannelService:
        config = parse_channel_record(CHANNEL, self.raw_record)
        channel = ChannelService(
            config,
            self.stores,
            self.clock,
            lambda settings: self.endpoint,
            flush_timeout=STOP_TIMEOUT,
        )
        self.successResultOf(channel.startService())
        self.endpoint.gateway.login()
        self.assertEqual(channel.status()["connection_state"], "ready")
        return channel

    def test_redis_down_the_stop_ends_and_says_what_is_left(self):
        channel = self.running_channel()
        self.redis.answering = False

        self.run_until_fired(
            channel.stopService(), 2 * channel.config.stop_timeout + STOP_TIMEOUT
        )

        self.assertFalse(channel.flushed)
        self.assertTrue(self.endpoint.gateway.closed)
        (line,) = self.warnings(self.events)
        self.assertIn(f"channel {CHANNEL} stopped without its last writes", line)
        self.assertIn(f"writes_queued={self.writer.backlog}", line)
        self.assertIn("recovered at the next start", line)
        self.assert_no_password(self.events)
        self.assert_clock_idle()

    def test_redis_up_every_write_is_flushed(self):
        channel = self.running_channel()
        self.writer.stalled = True  # slow, not gone

        stopping = channel.stopService()
        self.clock.advance(2 * channel.config.stop_timeout)
        self.assertNoResult(stopping)
        self.writer.write_waiting()

        self.successResultOf(stopping)
        self.assertTrue(channel.flushed)
        self.assertEqual(self.writer.backlog, 0)
        self.assertEqual(self.warnings(self.events), [])

    def test_a_stop_during_the_start_ends_it(self):
        config = parse_channel_record(CHANNEL, self.raw_record)
        channel = ChannelService(
            config, self.stores, self.clock, lambda settings: self.endpoint
        )
        self.writer.queue("SET", "before", "1")
        self.writer.stalled = True  # the start waits for it
        starting = channel.startService()

        self.run_until_fired(channel.stopService(), channel.flush_timeout)
        self.writer.write_waiting()

        self.successResultOf(starting)
        self.assertEqual(self.endpoint.attempts, [])  # never connected
        self.assertEqual(channel.state, "stopped")
        self.assert_clock_idle()


class CollectionStopTests(ClockStopTestCase):
    """ChannelCollection.stopService with Redis unreachable."""

    def new_collection(self) -> ChannelCollection:
        """A collection over the test's stores, gateway and clock."""
        return ChannelCollection(
            self.stores,
            self.clock,
            lambda settings: self.endpoint,
            owner="test",
            lease_ttl=600.0,
            stop_timeout=STOP_TIMEOUT,
        )

    def running_collection(self) -> ChannelCollection:
        collection = self.new_collection()
        self.successResultOf(collection.startService())
        self.endpoint.gateway.login()
        self.assertEqual(len(collection), 1)
        return collection

    def test_redis_down_the_stop_ends_and_the_lease_is_left_to_lapse(self):
        collection = self.running_collection()
        bound = collection.longest_stop()
        self.redis.answering = False

        self.run_until_fired(collection.stopService(), bound)

        self.assertEqual(len(collection), 0)
        self.assertEqual(collection.leases.held(), [])
        lines = self.warnings(self.events)
        self.assertEqual(len(lines), 2, lines)
        self.assertIn(f"channel {CHANNEL} stopped without its last writes", lines[0])
        self.assertIn("1 channel leases not given back, left to lapse", lines[1])
        self.assert_no_password(self.events)
        self.assert_clock_idle()

        # Redis back before the process ends: the lease is not released by a
        # late command behind writes that may never be written.
        self.redis.answer_waiting()
        self.assertEqual(self.redis.values[keys.lease(CHANNEL)], "test")

    def test_redis_up_the_lease_is_given_back(self):
        collection = self.running_collection()
        stopping = collection.stopService()
        self.answer_terminate()
        self.successResultOf(stopping)
        self.assertNotIn(keys.lease(CHANNEL), self.redis.values)
        self.assertEqual(self.warnings(self.events), [])
        self.assert_clock_idle()

    def test_a_lease_release_without_answer_is_given_up(self):
        collection = self.running_collection()
        stopping = collection.stopService()  # TERMINATE sent
        self.writer.redis = MemoryRedis()  # writes still go through, but
        self.redis.answering = False  # the lease release gets no answer
        self.answer_terminate()

        self.run_until_fired(stopping, STOP_TIMEOUT)
        (line,) = self.warnings(self.events)
        self.assertIn(f"lease of channel={CHANNEL} not given back", line)
        self.assert_clock_idle()

    def test_a_check_waiting_for_redis_does_not_hold_the_stop(self):
        collection = self.running_collection()
        self.redis.answering = False
        checking = collection.reconcile(CHANNEL)  # waits for GET

        self.run_until_fired(collection.stopService(), collection.longest_stop())
        lines = self.warnings(self.events)
        self.assertIn(f"gave up waiting for the check of channel={CHANNEL}", lines[0])

        # Redis back: the check ends without starting the channel again.
        attempts = len(self.endpoint.attempts)
        self.redis.answer_waiting()
        self.successResultOf(checking)
        self.assertEqual(len(collection), 0)
        self.assertEqual(len(self.endpoint.attempts), attempts)

    def test_a_channel_starting_when_redis_goes_away_is_stopped(self):
        self.writer.queue("SET", "before", "1")
        self.writer.stalled = True  # the channel's start waits for it
        collection = self.new_collection()
        collection.startService()
        self.assertEqual(len(collection), 1)

        self.run_until_fired(collection.stopService(), collection.longest_stop())
        self.writer.write_waiting()

        self.assertEqual(len(collection), 0)
        self.assertEqual(self.endpoint.attempts, [])
        self.assert_clock_idle()


class RealRedisDownTests(LogCapture, TestCase):
    """A CmppService with a channel logged in to the simulator, then its
    redis-server killed or frozen: the stop still ends (the trial timeout is
    only the guard) and names what it gave up."""

    timeout = 60

    @defer.inlineCallbacks
    def running_service(self):
        self.events = self.capture_log()
        server, redis = yield start_redis(self)
        simulator, port = yield start_simulator(self, ["a0"])
        yield redis.set(keys.channel_info(CHANNEL), record(CHANNEL, "a0", port))
        service = yield start_service(
            self, server, rescan_interval=60.0, stop_timeout=0.5
        )
        yield wait_for(lambda: simulator.logged_in("a0"))
        return server, redis, service

    def assert_gave_up(self, service):
        self.assertFalse(service.running)
        lines = self.warnings(self.events)
        self.assertTrue(
            any("stopped without its last writes" in line for line in lines), lines
        )
        self.assertTrue(any("writes_not_written=" in line for line in lines), lines)

    @defer.inlineCallbacks
    def test_redis_killed(self):
        server, _redis, service = yield self.running_service()
        yield server.kill()
        yield service.stopService()
        self.assert_gave_up(service)

    @defer.inlineCallbacks
    def test_redis_frozen(self):
        server, _redis, service = yield self.running_service()
        os.kill(server.pid, signal.SIGSTOP)
        self.addCleanup(os.kill, server.pid, signal.SIGCONT)
        service.stores.writer.queue("SET", "never-written", "1")
        yield service.stopService()
        self.assert_gave_up(service)

    @defer.inlineCallbacks
    def test_redis_up_everything_is_written_and_the_lease_given_back(self):
        _server, redis, service = yield self.running_service()
        service.stores.writer.queue("SET", "written-at-stop", "1")
        yield service.stopService()
        self.assertEqual(service.stores.writer.backlog, 0)
        self.assertEqual(self.warnings(self.events), [])
        self.assertIsNone((yield redis.get(keys.lease(CHANNEL))))
        self.assertEqual((yield redis.get("written-at-stop")), "1")


class BoundedStepTests(LogCapture, SynchronousTestCase):
    """CmppService._bounded: each step of a stop gives up once, out loud."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.service = CmppService(None, self.clock, stop_timeout=STOP_TIMEOUT)
        self.events = self.capture_log()

    def test_a_step_that_ends_quietly_when_cancelled_is_still_reported(self):
        # The MT reader's stop fires with None when cancelled.
        step = defer.Deferred(lambda d: d.callback(None))
        bounded = self.service._bounded(step, "the MT reader", left=lambda: {"n": 3})
        self.clock.advance(STOP_TIMEOUT)
        self.assertIsNone(self.successResultOf(bounded))
        (line,) = self.warnings(self.events)
        self.assertEqual(
            line,
            f"stopping: gave up waiting for the MT reader after {STOP_TIMEOUT} s n=3",
        )

    def test_a_step_that_ends_in_time_says_nothing(self):
        step: defer.Deferred = defer.Deferred()
        bounded = self.service._bounded(step, "queued writes")
        self.clock.advance(STOP_TIMEOUT - 1)
        step.callback("done")
        self.assertIsNone(self.successResultOf(bounded))
        self.assertEqual(self.warnings(self.events), [])
        self.assertEqual(self.clock.getDelayedCalls(), [])
