# Restarts with submits in flight: Sequence_Ids go on, every part one outcome.
"""A service stopped with submits unanswered, and a new one on the same Redis.

The simulator holds its SUBMIT_RESPs back while the first service runs, so its
submits are still in flight when it stops (after a short stop timeout). The
second service, with the same consumer name, gets the pending MT entries back
and resolves the parts by the channel's policy.
"""

from __future__ import annotations

import json
from collections import Counter

import attrs
from twisted.internet import defer, reactor
from twisted.trial.unittest import TestCase

from cmppsvc import keys
from cmppsvc.guard import loopback_only
from cmppsvc.redisconn import RedisAddress
from cmppsvc.runtime import CmppService
from tests.endtoend import (
    FIXTURE_CHANNELS,
    read_events,
    send_mt,
    start_platform,
    wait_for,
)

CHANNEL = FIXTURE_CHANNELS[0]
ACCOUNT = "100002"
CONSUMER = "restart-test"
LONG_TEXT = "长" * 150  # three segments of 67 characters


def quick_stop(config):
    """Loopback only, and a short graceful stop: the test waits for it."""
    return attrs.evolve(loopback_only(config), stop_timeout=0.3)


@defer.inlineCallbacks
def start_service(testcase, platform):
    service = CmppService(
        RedisAddress.from_url(platform.server.url),
        reactor,
        consumer_name=CONSUMER,
        config_filter=quick_stop,
    )
    service.startService()
    testcase.addCleanup(lambda: service.running and service.stopService())
    yield service.whenStarted()
    return service


def submit_events(events):
    return [event for event in events if event["type"] == "submit"]


@defer.inlineCallbacks
def set_policy(redis, channel_id: str, policy: str):
    key = keys.channel_info(channel_id)
    record = json.loads((yield redis.get(key)))
    record["restartPolicy"] = policy
    yield redis.set(key, json.dumps(record))


SINGLES = 20
LONG_AFTER = 3  # the long message follows this many singles
PARTS = SINGLES + 3


class RestartTests(TestCase):
    """Stop with submits in flight, start again against the same Redis."""

    timeout = 90

    @defer.inlineCallbacks
    def _run_until_stopped_in_flight(self):
        platform = yield start_platform(self, start_service=False)
        simulator = platform.simulator
        service = yield start_service(self, platform)
        yield wait_for(lambda: simulator.logged_in(ACCOUNT))

        # Answers are held back: the window fills and stays full.
        simulator.behaviour.response_delay = 30.0
        for number in range(SINGLES):
            if number == LONG_AFTER:
                yield send_mt(
                    platform.redis, CHANNEL, to="13900000000", text=LONG_TEXT, id="long"
                )
            yield send_mt(
                platform.redis, CHANNEL, to=phone(number), text="hi", id=f"m{number}"
            )
        channel = service.collection.channel(CHANNEL)
        yield wait_for(lambda: channel.outbound.pending_parts == PARTS)
        # The window is full once the simulator sees no new submit for a while.
        _last_counts.clear()
        yield wait_for(lambda: steady(simulator))

        # The channel stops at once (as when its lease is lost): no drain.
        yield channel.stopService()
        yield service.stopService()
        yield wait_for(lambda: not simulator.logged_in())
        sent = len(simulator.submits)
        self.assertLess(sent, PARTS - 2, "some parts were still queued")
        inflight = yield platform.redis.execute_command("HLEN", keys.inflight(CHANNEL))
        self.assertEqual(inflight, sent, "records of queued parts were deleted")
        simulator.behaviour.response_delay = 0.0
        return platform, sent

    @defer.inlineCallbacks
    def _wait_for_outcomes(self, platform):
        def finished():
            def check(events):
                return len(submit_events(events)) >= PARTS

            return read_events(platform.redis).addCallback(check)

        yield wait_for(finished, timeout=30)

        def acknowledged():
            return platform.redis.execute_command(
                "XPENDING", keys.mt_stream(CHANNEL), keys.MT_GROUP
            ).addCallback(lambda reply: reply[0] == 0)

        yield wait_for(acknowledged, timeout=30)
        inflight = yield platform.redis.execute_command(
            "EXISTS", keys.inflight(CHANNEL)
        )
        self.assertEqual(inflight, 0, "records deleted with the XACK")
        return (yield read_events(platform.redis))

    def _assert_one_outcome_per_part(self, events):
        per_part = Counter(
            (event["id"], event["to"], event["segment"])
            for event in submit_events(events)
        )
        expected = {(f"m{n}", phone(n), "1") for n in range(SINGLES)}
        expected |= {("long", "13900000000", str(s)) for s in (1, 2, 3)}
        self.assertEqual(set(per_part), expected)
        self.assertEqual(set(per_part.values()), {1}, "one final outcome each")

    @defer.inlineCallbacks
    def test_resend_policy_resends_in_flight_with_higher_seqs(self):
        platform, sent = yield self._run_until_stopped_in_flight()
        simulator = platform.simulator
        before = simulator.submits[:sent]

        yield start_service(self, platform)
        events = yield self._wait_for_outcomes(platform)

        after = simulator.submits[sent:]
        self.assertEqual(len(after), PARTS, "each part sent once more, no more")
        self.assertGreater(
            min(received.seq for received in after),
            max(received.seq for received in before),
        )
        self._assert_one_outcome_per_part(events)

        def what(received):
            return received.submit.dest_terminal_ids, received.submit.msg_content

        sent_before = {what(received) for received in before}
        resent = [event for event in submit_events(events) if "resend" in event]
        self.assertEqual(len(resent), sent, "only the parts in flight")
        for event in submit_events(events):
            self.assertEqual(event["outcome"], "ok")
            self.assertEqual(event.get("resend"), "1" if event in resent else None)
        self.assertEqual(
            sum(1 for received in after if what(received) in sent_before), sent
        )

        # The long message's segments share one concatenation reference, those
        # sent before the stop and those sent after it.
        headers = {
            received.submit.msg_content[:5]
            for received in simulator.submits
            if received.submit.dest_terminal_ids == ("13900000000",)
        }
        self.assertEqual(len(headers), 1)

    @defer.inlineCallbacks
    def test_unknown_policy_reports_in_flight_as_unknown(self):
        platform, sent = yield self._run_until_stopped_in_flight()
        simulator = platform.simulator
        yield set_policy(platform.redis, CHANNEL, "unknown")

        yield start_service(self, platform)
        events = yield self._wait_for_outcomes(platform)

        self.assertEqual(len(simulator.submits), PARTS, "only the queued parts sent")
        self._assert_one_outcome_per_part(events)
        outcomes = Counter(event["outcome"] for event in submit_events(events))
        self.assertEqual(outcomes, {"unknown": sent, "ok": PARTS - sent})
        for event in submit_events(events):
            self.assertNotIn("resend", event)
            if event["outcome"] == "unknown":
                self.assertEqual(event["recovered"], "1")

    @defer.inlineCallbacks
    def test_report_for_a_msg_id_from_before_the_restart_is_matched(self):
        platform = yield start_platform(self, start_service=False, report_delay=3600)
        simulator = platform.simulator
        service = yield start_service(self, platform)
        yield wait_for(lambda: simulator.logged_in(ACCOUNT))
        yield send_mt(platform.redis, CHANNEL, to="13800000001", text="hi", id="r1")
        events = yield wait_for(
            lambda: read_events(platform.redis).addCallback(
                lambda events: submit_events(events) and events
            )
        )
        msg_id = int(submit_events(events)[0]["msg_id"])
        yield service.stopService()

        service = yield start_service(self, platform)
        yield wait_for(lambda: simulator.logged_in(ACCOUNT))
        simulator.inject_report(msg_id, "13800000001", account=ACCOUNT)
        simulator.inject_report(msg_id, "13800000001", account=ACCOUNT)

        def reported():
            counters = service.collection.channel(CHANNEL).inbound.counters
            return counters["reports"] + counters["duplicate_reports"] >= 2

        yield wait_for(reported)
        events = yield read_events(platform.redis)
        reports = [event for event in events if event["type"] == "report"]
        self.assertEqual(len(reports), 1, "the second report is a duplicate")
        self.assertEqual(reports[0]["id"], "r1")
        self.assertEqual(reports[0]["matched"], "1")
        self.assertEqual(reports[0]["msg_id"], str(msg_id))


_last_counts: list[int] = []


def steady(simulator) -> int:
    """The number of submits received, once ten looks in a row agree (the
    window is full and nothing more arrives)."""
    count = len(simulator.submits)
    _last_counts.append(count)
    if len(_last_counts) >= 10 and len(set(_last_counts[-10:])) == 1:
        _last_counts.clear()
        return count
    return 0


def phone(number: int) -> str:
    return f"1380000{number:04d}"


class LeftoverAndForgetTests(TestCase):
    """Records whose entry is gone; a manual stop's clean-up."""

    timeout = 60

    @defer.inlineCallbacks
    def test_record_of_an_entry_no_longer_pending_is_resolved_unknown(self):
        platform = yield start_platform(self, start_service=False)
        redis = platform.redis
        record = {"id": "gone", "to": "13800000009", "segment": 1, "segments": 1}
        yield redis.execute_command(
            "HSET",
            keys.inflight(CHANNEL),
            "5-0/0",
            json.dumps(dict(record, parts=1, seq=77)),
        )
        yield start_service(self, platform)

        events = yield wait_for(
            lambda: read_events(redis).addCallback(
                lambda events: submit_events(events) and events
            )
        )
        (event,) = submit_events(events)
        self.assertEqual(
            (event["id"], event["outcome"], event["recovered"], event["seq"]),
            ("gone", "unknown", "1", "77"),
        )
        yield wait_for(
            lambda: redis.execute_command("EXISTS", keys.inflight(CHANNEL)).addCallback(
                lambda exists: exists == 0
            )
        )

    @defer.inlineCallbacks
    def test_forget_resolves_in_flight_and_deletes_the_cached_keys(self):
        platform = yield start_platform(self, start_service=False)
        simulator = platform.simulator
        redis = platform.redis
        service = yield start_service(self, platform)
        yield wait_for(lambda: simulator.logged_in(ACCOUNT))
        simulator.behaviour.response_delay = 30.0
        for number in range(3):
            yield send_mt(redis, CHANNEL, to=phone(number), text="hi", id=f"f{number}")
        yield wait_for(lambda: len(simulator.submits) == 3)

        channel = service.collection.channel(CHANNEL)
        yield channel.stopService()
        sequence = yield redis.execute_command("EXISTS", keys.sequence(CHANNEL))
        self.assertEqual(sequence, 1)
        left = yield channel.forget()
        self.assertEqual(left, 0)

        events = yield read_events(redis)
        outcomes = sorted((e["id"], e["outcome"]) for e in submit_events(events))
        self.assertEqual(outcomes, [(f"f{n}", "unknown") for n in range(3)])
        for key in (keys.inflight(CHANNEL), keys.sequence(CHANNEL)):
            exists = yield redis.execute_command("EXISTS", key)
            self.assertEqual(exists, 0, key)
        pending = yield redis.execute_command(
            "XPENDING", keys.mt_stream(CHANNEL), keys.MT_GROUP
        )
        self.assertEqual(pending[0], 0)
