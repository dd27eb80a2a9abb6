# The main job end to end: fixture records, real Redis, simulator, events out.
"""The whole service, as a user runs it, on the two fixture channel records."""

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from cmppsvc import keys
from tests.endtoend import (
    FIXTURE_CHANNELS,
    read_events,
    send_mt,
    start_platform,
    wait_for,
)

PASSWORD = "123"


class EndToEndTests(TestCase):
    """A message through the stream comes back as submit and report events."""

    timeout = 60

    @defer.inlineCallbacks
    def test_message_submitted_answered_and_reported(self):
        platform = yield start_platform(self)
        channel = FIXTURE_CHANNELS[0]
        yield wait_for(lambda: platform.simulator.logged_in())

        yield send_mt(platform.redis, channel, to="13800000000", text="你好", id="m1")

        def both_events():
            def check(events):
                types = {event["type"] for event in events if event["id"] == "m1"}
                return {"submit", "report"} <= types and events

            return read_events(platform.redis).addCallback(check)

        events = yield wait_for(both_events)
        submit = next(e for e in events if e["type"] == "submit" and e["id"] == "m1")
        report = next(e for e in events if e["type"] == "report" and e["id"] == "m1")

        self.assertEqual(submit["channel"], channel)
        self.assertEqual(submit["result"], "0")
        self.assertEqual(submit["segments"], "1")
        self.assertTrue(submit["msg_id"].isdigit())
        self.assertEqual(report["msg_id"], submit["msg_id"])
        self.assertEqual(report["stat"], "DELIVRD")
        self.assertGreaterEqual(float(report["latency_ms"]), 0.0)

        received = platform.simulator.submits[-1]
        self.assertEqual(received.dest_terminal_ids, ("13800000000",))
        self.assertEqual(received.msg_content, "你好".encode("utf-16-be"))

        pending = yield platform.redis.execute_command(
            "XPENDING", keys.mt_stream(channel), keys.MT_GROUP
        )
        self.assertEqual(pending[0], 0)

    @defer.inlineCallbacks
    def test_both_fixture_channels_connect(self):
        platform = yield start_platform(self)
        yield wait_for(lambda: len(platform.simulator.logged_in()) >= 2)
        self.assertEqual(
            sorted(service.name for service in platform.service.collection),
            sorted(FIXTURE_CHANNELS),
        )

    @defer.inlineCallbacks
    def test_password_never_in_events_or_status(self):
        platform = yield start_platform(self)
        channel = FIXTURE_CHANNELS[1]
        yield wait_for(lambda: platform.simulator.logged_in())
        yield send_mt(platform.redis, channel, to="13800000001", text="hello")
        yield wait_for(
            lambda: read_events(platform.redis).addCallback(
                lambda events: any(e["type"] == "report" for e in events)
            )
        )
        status = yield platform.redis.hgetall(keys.status(channel))
        events = yield read_events(platform.redis)
        for value in list(status.values()) + [v for e in events for v in e.values()]:
            text = value.decode() if isinstance(value, bytes) else str(value)
            self.assertNotIn('"123"', text)
            self.assertNotEqual(text, PASSWORD)

    @defer.inlineCallbacks
    def test_unreadable_entries_are_refused_with_a_reason(self):
        platform = yield start_platform(self)
        channel = FIXTURE_CHANNELS[0]
        yield wait_for(lambda: platform.simulator.logged_in())

        yield send_mt(platform.redis, channel, to="13800000000", text=b"\xff\xfe")
        yield send_mt(platform.redis, channel, to="13800000000", text="x" * 70_000)
        yield send_mt(platform.redis, channel, to="13800000000", text="ok", id="good")

        def outcomes():
            def check(events):
                failed = [e for e in events if e["type"] == "failed"]
                good = [e for e in events if e["id"] == "good"]
                return len(failed) == 2 and good and failed

            return read_events(platform.redis).addCallback(check)

        failed = yield wait_for(outcomes)
        reasons = " ".join(event["reason"] for event in failed)
        self.assertIn("UTF-8", reasons)
        self.assertIn("larger than", reasons)
        yield wait_for(
            lambda: platform.redis.execute_command(
                "XPENDING", keys.mt_stream(channel), keys.MT_GROUP
            ).addCallback(lambda pending: pending[0] == 0)
        )
