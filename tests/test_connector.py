# test-case-name: tests.test_connector
"""A channel's connections on a Clock: reconnects, window, resends, rate, stop."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from cmppsvc.codec import ConnectResp, Submit, SubmitResp, Terminate, TerminateResp
from cmppsvc.connector import (
    ChannelConnector,
    ChannelStopped,
    SubmitOutcome,
    SubmitUnknown,
)
from cmppsvc.owner import CLOSED, READY
from tests.test_protocol_support import (
    START,
    FakeEndpoint,
    Sequence,
    make_settings,
    make_submit,
)


class ConnectorTestCase(SynchronousTestCase):
    """A ChannelConnector on a FakeEndpoint; jitter is 0 so delays are exact."""

    def start(self, **changes: object) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        self.settings = make_settings(**changes)
        self.endpoint = FakeEndpoint(self.clock, self.settings.version)
        self.delivered: list = []
        self.changes: list[tuple[str, dict]] = []
        self.late: list = []
        self.sequence = Sequence()
        self.connector = ChannelConnector(
            self.settings,
            self.clock,
            self.sequence,
            self.delivered.append,
            lambda settings: self.endpoint,
            lambda state, info: self.changes.append((state, info)),
            late_response=lambda seq, resp: self.late.append(seq),
            random_source=lambda: 0.0,
        )
        self.connector.startService()
        self.addCleanup(self._stop)

    def _stop(self) -> None:
        if self.connector.running:
            self.connector.stopService()
            self.clock.advance(100)

    def tick(self, seconds: int) -> None:
        """Advance the clock one second at a time, as a running reactor would."""
        for _ in range(seconds):
            self.clock.advance(1)

    def ready(self, **changes: object) -> None:
        self.start(**changes)
        self.endpoint.gateway.login()
        self.assertEqual(self.connector.status()["state"], READY)

    def submit(self, pdu: Submit | None = None, seqs: list | None = None) -> list:
        results: list = []
        assigned = seqs.append if seqs is not None else None
        self.connector.submit(pdu or make_submit(), assigned).addBoth(results.append)
        return results

    def answer(self, gateway, result: int = 0) -> list:
        """Answer every SUBMIT the gateway holds; return them."""
        submits = [p for p in gateway.received() if isinstance(p, Submit)]
        gateway.send(
            *(
                SubmitResp(msg_id=1000 + p.seq, result=result, seq=p.seq)
                for p in submits
            )
        )
        return submits


class SubmitFlowTests(ConnectorTestCase):
    """Submits wait for login and window slots, then resolve with outcomes."""

    def test_waits_for_login_then_sends(self) -> None:
        self.start()
        results = self.submit()
        gateway = self.endpoint.gateway
        self.assertEqual(len(gateway.received()), 1)  # CONNECT only
        gateway.send(ConnectResp(status=0, seq=1))
        (sent,) = self.answer(gateway)
        self.assertIsInstance(results[0], SubmitOutcome)
        self.assertEqual(results[0].msg_id, 1000 + sent.seq)

    def test_window_bounds_unanswered(self) -> None:
        self.ready(window=2, rate=1000)
        results = [self.submit() for _ in range(5)]
        gateway = self.endpoint.gateway
        self.assertEqual(len(self.answer(gateway)), 2)
        self.assertEqual(self.connector.status()["window_in_use"], 2)
        self.assertEqual(len(self.answer(gateway)), 2)
        self.assertEqual(len(self.answer(gateway)), 1)
        self.assertEqual(sum(len(r) for r in results), 5)

    def test_late_response_reaches_hook(self) -> None:
        self.ready(response_timeout=4.0, attempts=1, heartbeat_interval=1000.0)
        results = self.submit()
        (sent,) = self.endpoint.gateway.received()
        self.clock.advance(5)
        self.assertEqual(type(results[0].value).__name__, "SubmitTimeout")
        self.endpoint.gateway.send(SubmitResp(msg_id=1, result=0, seq=sent.seq))
        self.assertEqual(self.late, [sent.seq])
        self.assertEqual(self.connector.status()["late_responses"], 1)

    def test_answers_to_unsent_seqs_are_warned_about_once_a_second(self) -> None:
        self.ready(heartbeat_interval=1000.0)
        with capturedLogs() as warnings:
            for seq in (999_999, 999_998, 999_997):
                self.endpoint.gateway.send(SubmitResp(msg_id=1, result=0, seq=seq))
            self.clock.advance(1.5)
            self.endpoint.gateway.send(SubmitResp(msg_id=1, result=0, seq=999_996))

        logged = [e for e in warnings if "no outstanding submit" in e["log_format"]]
        self.assertEqual([e["seq"] for e in logged], [999_999, 999_996])
        self.assertEqual(logged[-1]["total"], 4)
        self.assertEqual(self.late, [999_999, 999_998, 999_997, 999_996])


class ReconnectTests(ConnectorTestCase):
    """Backoff by failure kind; one attempt at a time; stop cancels the next one."""

    def test_network_failures_back_off_exponentially(self) -> None:
        self.start()
        self.endpoint.refuse = 3
        self.endpoint.gateway.drop()
        self.tick(20)
        # Dropped at START; refused after 1 s, 2 s and 4 s; connected after 8 s.
        attempts = self.endpoint.attempts
        gaps = [later - earlier for earlier, later in zip(attempts, attempts[1:])]
        self.assertEqual(gaps, [1.0, 2.0, 4.0, 8.0])
        self.tick(40)
        self.assertEqual(len(self.endpoint.attempts), 5)

    def test_authentication_refusal_waits_long(self) -> None:
        self.start()
        self.endpoint.gateway.login(status=3)
        self.clock.advance(0)
        status = self.connector.status()
        self.assertEqual(status["last_error_code"], 3)
        self.assertIn("authentication error", status["last_error"])
        self.assertEqual(status["last_error_kind"], "authentication")
        self.assertTrue(any(info.get("error_code") == 3 for _, info in self.changes))
        self.clock.advance(299)
        self.assertEqual(len(self.endpoint.attempts), 1)
        self.clock.advance(1)
        self.assertEqual(len(self.endpoint.attempts), 2)

    def test_stop_cancels_pending_attempt(self) -> None:
        self.start()
        self.endpoint.gateway.drop()
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        stopped: list = []
        self.connector.stopService().addCallback(stopped.append)
        self.assertEqual(stopped, [None])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.clock.advance(1000)
        self.assertEqual(len(self.endpoint.attempts), 1)
        self.assertEqual(self.connector.status()["state"], CLOSED)

    def test_silent_link_reconnects(self) -> None:
        self.ready(heartbeat_interval=30.0, response_timeout=10.0, attempts=2)
        self.tick(50)
        self.assertTrue(self.endpoint.gateway.transport.disconnected)
        self.clock.advance(0)
        self.clock.advance(1)
        self.assertEqual(len(self.endpoint.gateways), 2)

    def test_gateway_terminate_answered_and_reconnected(self) -> None:
        self.ready()
        first = self.endpoint.gateway
        first.send(Terminate(seq=77))
        self.assertEqual(first.received(), [TerminateResp(seq=77)])
        self.clock.advance(0)
        self.clock.advance(1)
        self.assertEqual(len(self.endpoint.gateways), 2)
        self.endpoint.gateway.login()
        self.assertEqual(self.connector.status()["state"], READY)


class LostConnectionTests(ConnectorTestCase):
    """Unanswered submits of a lost connection are resent with a new seq."""

    def test_resent_on_next_connection(self) -> None:
        self.ready()
        seqs: list = []
        results = self.submit(seqs=seqs)
        self.endpoint.gateway.received()
        self.endpoint.gateway.drop()
        self.clock.advance(1)
        self.endpoint.gateway.login()
        (sent,) = self.answer(self.endpoint.gateway)
        self.assertEqual(len(seqs), 2)
        self.assertNotEqual(seqs[0], seqs[1])
        self.assertEqual(sent.seq, seqs[1])
        self.assertTrue(results[0].resent)
        self.assertEqual(results[0].attempts, 2)

    def test_unknown_when_attempts_used(self) -> None:
        self.ready(attempts=1)
        results = self.submit()
        self.endpoint.gateway.drop()
        self.assertIsInstance(results[0].value, SubmitUnknown)

    def test_plain_drop_is_the_last_error(self) -> None:
        self.ready()
        self.endpoint.gateway.drop()
        status = self.connector.status()
        self.assertEqual(status["last_error_kind"], "network")
        self.assertIn("connection lost", status["last_error"])


class FlowControlTests(ConnectorTestCase):
    """Result 8: slower rate, same message ahead of the queue with a new seq, capped."""

    def test_resent_ahead_with_new_seq_and_slower(self) -> None:
        self.ready(rate=100, window=1)
        seqs: list = []
        first = self.submit(make_submit(b"first"), seqs)
        second = self.submit(make_submit(b"second"))
        gateway = self.endpoint.gateway
        (sent,) = self.answer(gateway, result=8)
        self.assertEqual(self.connector.status()["rate"], 50)
        self.assertEqual(gateway.received(), [])  # paused
        self.clock.advance(0.2)
        (again,) = gateway.received()
        self.assertEqual(again.msg_content, b"first")
        self.assertNotEqual(again.seq, sent.seq)
        self.assertEqual(seqs, [sent.seq, again.seq])
        gateway.send(SubmitResp(msg_id=5, result=0, seq=again.seq))
        self.assertEqual(first[0].result, 0)
        self.assertEqual(second, [])

    def test_answered_while_stopping_ends_the_submit(self) -> None:
        self.ready(stop_timeout=5.0)
        results = self.submit()
        self.connector.stopService()
        self.answer(self.endpoint.gateway, result=8)
        self.assertIsInstance(results[0].value, ChannelStopped)
        self.assertEqual(self.connector.status()["queued"], 0)

    def test_retries_capped(self) -> None:
        self.ready(flow_control_retries=2, rate=1000)
        results = self.submit()
        for _ in range(3):
            self.clock.advance(1)
            self.answer(self.endpoint.gateway, result=8)
        self.assertEqual(results[0].result, 8)
        self.assertEqual(results[0].attempts, 3)


class RateTests(ConnectorTestCase):
    """Per channel, per SUBMIT PDU, smooth, shared by all connections."""

    def test_shared_by_connections_and_smooth(self) -> None:
        self.start(rate=50, connections=2)
        for gateway in self.endpoint.gateways:
            gateway.login()
        for _ in range(100):
            self.submit()
        sent_at: list[float] = []
        for _ in range(3000):
            for gateway in self.endpoint.gateways:
                sent_at += [self.clock.seconds()] * len(self.answer(gateway))
            self.clock.advance(0.001)
        self.assertEqual(len(sent_at), 100)
        for start in sent_at:
            in_window = [t for t in sent_at if start <= t < start + 0.1]
            self.assertLessEqual(len(in_window), 50 / 10 + 1)
        self.assertGreaterEqual(sent_at[-1] - sent_at[0], 1.9)
        self.assertLessEqual(sent_at[-1] - sent_at[0], 2.2)

    def test_zero_rate_means_default(self) -> None:
        self.ready(rate=0)
        self.assertEqual(self.connector.status()["rate"], 100.0)


class StopTests(ConnectorTestCase):
    """Graceful stop: refuse new submits, bounded wait, TERMINATE, close."""

    def test_graceful_stop(self) -> None:
        self.ready(window=1, stop_timeout=5.0)
        sent = self.submit()
        queued = self.submit()
        gateway = self.endpoint.gateway
        (pdu,) = gateway.received()
        stopped: list = []
        self.connector.stopService().addCallback(stopped.append)
        self.assertIsInstance(queued[0].value, ChannelStopped)
        self.assertIsInstance(self.submit()[0].value, ChannelStopped)

        gateway.send(SubmitResp(msg_id=9, result=0, seq=pdu.seq))
        self.assertEqual(sent[0].msg_id, 9)
        (terminate,) = gateway.received()
        self.assertIsInstance(terminate, Terminate)
        gateway.send(TerminateResp(seq=terminate.seq))
        self.clock.advance(0)
        self.assertEqual(stopped, [None])
        self.assertEqual(self.connector.status()["state"], CLOSED)
        self.clock.advance(1000)
        self.assertEqual(len(self.endpoint.attempts), 1)


class SeveralConnectionsTests(ConnectorTestCase):
    """``connections`` sessions, each logging in on its own."""

    def test_two_connections_share_the_work(self) -> None:
        self.start(connections=2, window=1, rate=1000)
        self.assertEqual(len(self.endpoint.gateways), 2)
        for gateway in self.endpoint.gateways:
            gateway.login()
        self.assertEqual(self.connector.status()["connections_ready"], 2)
        self.submit()
        self.submit()
        counts = [len(self.answer(g)) for g in self.endpoint.gateways]
        self.assertEqual(counts, [1, 1])
