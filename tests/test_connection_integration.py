# test-case-name: tests.test_connection_integration
"""The connector against the real simulator over 127.0.0.1, gateway misbehaving.

Each test makes the gateway misbehave one way, shows the connector recovers, and
that every submitted message ends with exactly one outcome.  Bounded: a few dozen
messages, short timers, polling waits with generous deadlines, no timing asserts.
"""

from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks

from cmppsvc.backoff import AUTHENTICATION, CURVES
from cmppsvc.owner import CLOSED, READY
from cmppsvc.simulator import Behaviour
from cmppsvc.window import ChannelStopped, SubmitFailed, SubmitTimeout, SubmitUnknown
from tests.connection_harness import (
    ACCOUNT,
    PASSWORD,
    IntegrationCase,
    pause,
    wait_until,
)


class RefusedPasswordTests(IntegrationCase):
    """The gateway refuses the password: the connector waits, and recovers."""

    @inlineCallbacks
    def test_waits_long_without_a_reconnect_storm(self):
        yield self.start(gateway_password="not-the-one", curves=CURVES)
        self.submit(5)

        yield wait_until(lambda: self.counters().refused_logins >= 1, "a refusal")
        yield pause(1.5)

        self.assertEqual(self.counters().connections, 1)
        self.assertEqual(self.counters().logins, 0)
        status = self.connector.status()
        self.assertEqual(status["last_error_kind"], AUTHENTICATION)
        self.assertEqual(status["last_error_code"], 3)
        self.assertGreater(status["next_attempt_at"] - reactor.seconds(), 200)
        self.assertEqual(self.ledger.ended(), 0)

        yield self.stop()
        outcomes = self.ledger.final()
        self.assertEqual(len(outcomes), 5)
        for outcome in outcomes.values():
            self.assertIsInstance(outcome, ChannelStopped)
        self.assertEqual(self.simulator.submits, [])
        self.assertNotIn(PASSWORD, repr(self.connector.status()))
        self.assertNotIn(PASSWORD, repr(self.settings))

    @inlineCallbacks
    def test_recovers_once_the_password_is_right(self):
        yield self.start(gateway_password="not-the-one")
        self.submit(10)
        yield wait_until(lambda: self.counters().refused_logins >= 1, "a refusal")

        self.simulator.accounts.add(ACCOUNT, PASSWORD)
        yield self.wait_all_ended()

        self.assertEqual(self.counters().logins, 1)
        self.assertEqual(
            [outcome.result for outcome in self.ledger.successes().values()], [0] * 10
        )
        self.assert_settled()
        self.assertEqual(self.connector.status()["state"], READY)


class SlowGatewayTests(IntegrationCase):
    """The gateway answers slowly."""

    @inlineCallbacks
    def test_slow_within_the_timeout(self):
        yield self.start(Behaviour(response_delay=0.2), response_timeout=1.0)
        self.submit(40)
        yield self.wait_all_ended()

        successes = self.ledger.successes()
        self.assertEqual(len(successes), 40)
        self.assertEqual({outcome.attempts for outcome in successes.values()}, {1})
        self.assert_settled()

    @inlineCallbacks
    def test_slower_than_the_timeout(self):
        behaviour = Behaviour(report_delay=0.05)
        yield self.start(behaviour)
        yield wait_until(lambda: self.counters().logins == 1, "the login")
        behaviour.response_delay = 0.8

        self.submit(20)
        yield self.wait_all_ended()

        # Resent with the same seq: the first answer resolves it, the second is late.
        successes = self.ledger.successes()
        self.assertEqual(len(successes), 20)
        self.assertTrue(any(outcome.attempts > 1 for outcome in successes.values()))
        for index in successes:
            self.assertEqual(len(set(self.ledger.seqs[index])), 1)
        self.assert_settled()
        yield wait_until(lambda: self.late, "a late answer")
        self.assertEqual(self.counters().disconnects, 0)


class FullWindowDropTests(IntegrationCase):
    """The gateway drops the connection with our window full of submits."""

    @inlineCallbacks
    def test_resent_on_the_next_connection(self):
        behaviour = Behaviour(report_delay=0.05, drop_with_full_window=8)

        def on_state(state: str, info: dict) -> None:
            # Heal the gateway the moment the first connection is gone.
            if info.get("connection_state") == CLOSED and self.counters().logins:
                behaviour.drop_with_full_window = 0

        yield self.start(behaviour, on_state=on_state)
        self.submit(30)
        yield self.wait_all_ended()

        successes = self.ledger.successes()
        self.assertEqual(len(successes), 30)
        self.assertTrue(any(outcome.resent for outcome in successes.values()))
        self.assertGreaterEqual(self.counters().logins, 2)
        self.assert_settled()

    @inlineCallbacks
    def test_gives_up_as_unknown_when_it_keeps_dropping(self):
        yield self.start(Behaviour(report_delay=0.05, drop_with_full_window=8))
        self.submit(20)
        yield self.wait_all_ended()

        failures = self.ledger.failures()
        self.assertEqual(len(failures), 20)
        for failure in failures.values():
            self.assertIsInstance(failure, (SubmitUnknown, SubmitTimeout))
        self.assertEqual(self.ledger.successes(), {})
        self.assert_settled()


class FlowControlTests(IntegrationCase):
    """The gateway answers Result 8 above a rate."""

    @inlineCallbacks
    def test_slows_down_and_delivers_everything(self):
        yield self.start(Behaviour(report_delay=0.05, flow_control_rate=20), rate=200)
        self.submit(40)
        yield self.wait_all_ended()

        successes = self.ledger.successes()
        self.assertEqual(len(successes), 40)
        self.assertEqual({outcome.result for outcome in successes.values()}, {0})
        self.assertGreater(self.counters().flow_controlled, 0)
        self.assertGreater(self.connector.status()["flow_control_episodes"], 0)
        self.assert_settled()


class SilentHeartbeatTests(IntegrationCase):
    """The gateway stops answering ACTIVE_TEST."""

    @inlineCallbacks
    def test_dead_link_replaced(self):
        yield self.start(
            Behaviour(report_delay=0.05, ignore_heartbeats=True),
            heartbeat_interval=0.3,
            response_timeout=0.3,
            attempts=2,
        )
        self.submit(5)
        yield self.wait_all_ended()

        yield wait_until(
            lambda: self.counters().disconnects >= 1 and self.counters().logins >= 2,
            "the silent link to be replaced",
        )
        self.assertGreater(self.counters().active_tests_ignored, 0)
        self.assertIn("heartbeat", self.connector.status()["last_error"])

        self.submit(5, first=5)
        yield self.wait_all_ended()
        self.assertEqual(len(self.ledger.successes()), 10)
        self.assert_settled()


class GatewayTerminateTests(IntegrationCase):
    """The gateway sends TERMINATE."""

    @inlineCallbacks
    def test_after_some_submits(self):
        yield self.start(Behaviour(report_delay=0.05, terminate_after_submits=10))
        self.submit(50)
        yield self.wait_all_ended()

        outcomes = self.ledger.final()
        self.assertEqual(len(outcomes), 50)
        successes = self.ledger.successes()
        # A message resent after every connection it went out on was terminated
        # may end unknown; most get through, and none is lost or doubled.
        self.assertGreater(len(successes), 25)
        for failure in self.ledger.failures().values():
            self.assertIsInstance(failure, SubmitUnknown)
        self.assertGreaterEqual(self.counters().terminates_sent, 2)
        self.assert_settled()

    @inlineCallbacks
    def test_after_some_seconds(self):
        yield self.start(
            Behaviour(report_delay=0.05, terminate_after_seconds=0.4), rate=50
        )
        self.submit(60)
        yield self.wait_all_ended()

        self.assertEqual(len(self.ledger.final()), 60)
        self.assertGreaterEqual(self.counters().terminates_sent, 1)
        for failure in self.ledger.failures().values():
            self.assertIsInstance(failure, SubmitFailed)
        self.assertGreater(len(self.ledger.successes()), 30)
        self.assert_settled()


class GracefulStopTests(IntegrationCase):
    """Our own graceful stop, with answers on their way."""

    @inlineCallbacks
    def test_answers_awaited_then_terminate(self):
        yield self.start(Behaviour(response_delay=0.2), stop_timeout=2.0, rate=100)
        self.submit(40)
        yield wait_until(lambda: self.counters().submits >= 10, "some submits")

        yield self.stop()
        outcomes = self.ledger.final()
        self.assertEqual(len(outcomes), 40)
        sent = self.ledger.successes()
        self.assertGreaterEqual(len(sent), 10)
        for failure in self.ledger.failures().values():
            self.assertIsInstance(failure, ChannelStopped)
        self.assertEqual(self.counters().terminates_received, 1)
        self.assert_settled()

    @inlineCallbacks
    def test_flow_control_answered_while_stopping(self):
        yield self.start(
            Behaviour(response_delay=0.3, flow_control_rate=4), stop_timeout=2.0
        )
        self.submit(30)
        yield wait_until(lambda: self.counters().submits >= 16, "a full window")

        yield self.stop()
        yield self.wait_all_ended(deadline=5.0)
        self.assertEqual(len(self.ledger.final()), 30)
        for failure in self.ledger.failures().values():
            self.assertIsInstance(failure, ChannelStopped)
        self.assert_settled()
