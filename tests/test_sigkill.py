# A real `twistd cmppsvc` killed with SIGKILL mid-flow, then started again.
"""1,000 messages through the simulator; the service process is killed with
SIGKILL (no shutdown hook runs) once part of them have outcomes, then started
again with the same consumer name. Counted from the events stream: every
message has an outcome for each of its parts, exactly one, and the only
resends are of parts that were in flight at the kill, each marked.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter

from twisted.internet import defer, error, protocol, reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.trial.unittest import TestCase

from cmppsvc import keys
from cmppsvc.config import parse_channel_record, rewrite_record_gateway
from cmppsvc.inflight import is_done
from cmppsvc.simulator.factory import SimulatorFactory
from tests.endtoend import FIXTURE_CHANNELS, fixture_records, read_events, wait_for
from tests.redisserver import start_redis

CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHANNEL = FIXTURE_CHANNELS[0]
MESSAGES = 1000
LONG_EVERY = 25  # every 25th message is a long one (three segments)
LONG_TEXT = "长" * 150
KILL_AFTER = 250  # submit events written before the kill


class _Child(protocol.ProcessProtocol):
    """A child process; ``ended`` fires when it has exited."""

    def __init__(self) -> None:
        self.ended = defer.Deferred()

    def processEnded(self, reason) -> None:  # noqa: N802 (Twisted's name)
        self.ended.callback(reason.value)


def message(number: int) -> dict:
    text = LONG_TEXT if number % LONG_EVERY == 0 else f"message {number}"
    return {"to": f"138{number:08d}", "text": text, "id": f"k{number}"}


class ChildProcessCase(TestCase):
    """Redis and the simulator in the test process, cmppsvc in a child."""

    timeout = 150

    @defer.inlineCallbacks
    def setUp(self):
        self.log_paths = {}
        self.server, self.redis = yield start_redis(self)
        accounts = {}
        records = fixture_records()
        for key, raw in records:
            config = parse_channel_record(key.split(":", 1)[1], raw)
            accounts[config.account] = config.password
        self.simulator = SimulatorFactory(accounts, reactor)
        self.simulator.behaviour.report_delay = 0.2
        # Slow answers keep the window busy, so the kill finds work in flight.
        self.simulator.behaviour.response_delay = 0.05
        endpoint = TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
        port = yield endpoint.listen(self.simulator)
        self.addCleanup(port.stopListening)
        for key, raw in records:
            rewritten = rewrite_record_gateway(raw, "127.0.0.1", port.getHost().port)
            yield self.redis.set(key, rewritten)

    def _spawn(self, name: str):
        child = _Child()
        log_path = os.path.abspath(self.mktemp() + f"-{name}.log")
        self.log_paths[name] = log_path
        arguments = [
            sys.executable,
            "-c",
            "from twisted.scripts.twistd import run; run()",
            "-n",
            "--pidfile=",
            "--logfile",
            log_path,
            "cmppsvc",
            "--redis",
            self.server.url,
            "--consumer",
            "sigkill-test",
            "--loopback-only",
            "--lease-ttl",
            "1",
        ]
        environment = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": CHECKOUT,
            "HOME": os.environ.get("HOME", "/tmp"),
        }
        transport = reactor.spawnProcess(
            child, sys.executable, arguments, env=environment, path=CHECKOUT
        )

        def stop():
            if child.ended.called:
                return None
            transport.signalProcess("KILL")
            return child.ended

        self.addCleanup(stop)
        return transport, child

    @defer.inlineCallbacks
    def _submit_events(self):
        events = yield read_events(self.redis)
        return [event for event in events if event["type"] == "submit"]


class SigkillTests(ChildProcessCase):
    """Crash safety of a real process."""

    @defer.inlineCallbacks
    def test_sigkill_loses_nothing_and_resends_only_what_was_in_flight(self):
        stream = keys.mt_stream(CHANNEL)
        for number in range(MESSAGES):
            arguments = ["XADD", stream, "*"]
            for name, value in message(number).items():
                arguments += [name, value]
            last_entry = yield self.redis.execute_command(*arguments)
        parts = {}
        for number in range(MESSAGES):
            fields = message(number)
            segments = 3 if number % LONG_EVERY == 0 else 1
            for segment in range(1, segments + 1):
                parts[(fields["id"], fields["to"], str(segment))] = True

        transport, child = self._spawn("first")

        def enough():
            # XLEN, not a read of the events: the test process runs the
            # simulator too, and must not starve it.
            return self.redis.execute_command("XLEN", keys.EVENTS).addCallback(
                lambda length: length >= KILL_AFTER
            )

        yield wait_for(enough, timeout=45, step=0.01)
        transport.signalProcess("KILL")
        reason = yield child.ended
        self.assertIsInstance(reason, error.ProcessTerminated)

        # What the crashed process left in flight, as a restart finds it.
        inflight = yield self.redis.hgetall(keys.inflight(CHANNEL))
        in_flight_at_kill = set()
        for value in inflight.values():
            record = _json(value)
            if not is_done(record):
                key = (record["id"], record["to"], str(record["segment"]))
                in_flight_at_kill.add(key)
        before = yield self._submit_events()
        self.assertLess(len(before), len(parts), "killed before the end")

        transport, child = self._spawn("second")

        def all_acknowledged():
            return self.redis.execute_command("XINFO", "GROUPS", stream).addCallback(
                lambda groups: bool(groups) and _finished(groups[0], last_entry)
            )

        yield wait_for(all_acknowledged, timeout=60, step=0.1)
        transport.signalProcess("TERM")
        yield child.ended

        events = yield self._submit_events()
        outcomes = Counter((e["id"], e["to"], e["segment"]) for e in events)
        without_outcome = set(parts) - set(outcomes)
        self.assertEqual(without_outcome, set(), "every part has an outcome")
        self.assertEqual(set(outcomes) - set(parts), set())
        twice = {part: count for part, count in outcomes.items() if count > 1}
        self.assertEqual(twice, {}, "exactly one outcome per part")

        resent = {
            (e["id"], e["to"], e["segment"]) for e in events if e.get("resend") == "1"
        }
        self.assertEqual(resent, in_flight_at_kill, "resent: what was in flight")
        self.assertEqual(
            {e["outcome"] for e in events}, {"ok"}, "the gateway accepted all"
        )
        messages = {part[0] for part in parts}
        self.assertEqual(len(messages), MESSAGES)
        self.assertEqual(len({part[0] for part in outcomes}), MESSAGES)


def _group(group) -> dict[str, str]:
    """One group of XINFO GROUPS as {name: text}."""
    info = dict(zip(group[0::2], group[1::2]))
    return {_text(name): _text(value) for name, value in info.items()}


def _finished(group, last_entry) -> bool:
    """Every entry delivered to the group and acknowledged."""
    info = _group(group)
    return info["pending"] == "0" and info["last-delivered-id"] == _text(last_entry)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _json(value):
    if isinstance(value, bytes):
        value = value.decode()
    return json.loads(value)


class ShutdownTests(ChildProcessCase):
    """SIGTERM: the reactor's shutdown waits for the channels and the flush."""

    @defer.inlineCallbacks
    def test_sigterm_waits_for_answers_and_the_flush(self):
        # Answers take a second: at the SIGTERM every message is unanswered.
        self.simulator.behaviour.response_delay = 1.0
        stream = keys.mt_stream(CHANNEL)
        count = 30
        for number in range(count):
            arguments = ["XADD", stream, "*"]
            for name, value in message(number + 1).items():
                arguments += [name, value]
            yield self.redis.execute_command(*arguments)

        transport, child = self._spawn("sigterm")

        def all_taken():
            return self.redis.execute_command("XINFO", "GROUPS", stream).addCallback(
                lambda groups: (
                    bool(groups) and _group(groups[0])["pending"] == str(count)
                )
            )

        yield wait_for(all_taken, timeout=45, step=0.05)
        yield wait_for(lambda: self.simulator.total_submits() > 0, timeout=30)
        events = yield self._submit_events()
        self.assertEqual(events, [], "nothing answered before the SIGTERM")

        transport.signalProcess("TERM")
        yield child.ended
        # twistd ends with the signal it was stopped by, after its shutdown.
        with open(self.log_paths["sigterm"]) as log_file:
            self.assertIn("Server Shut Down.", log_file.read())

        # Every answer that came during the stop was written before the
        # process ended; parts still queued were never sent and stay pending.
        events = yield self._submit_events()
        answered = self.simulator.total_submits()
        self.assertEqual(len(events), answered)
        self.assertEqual(len({event["id"] for event in events}), answered)
        pending = yield self.redis.execute_command("XPENDING", stream, keys.MT_GROUP)
        self.assertEqual(pending[0], count - answered)
        inflight = yield self.redis.execute_command("EXISTS", keys.inflight(CHANNEL))
        self.assertEqual(inflight, 0, "queued parts' records deleted")
