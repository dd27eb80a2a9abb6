# test-case-name: tests.test_protocol
"""One CMPP connection on a Clock and an in-memory transport: login, window, timers."""

from __future__ import annotations

import datetime
import struct

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from cmppsvc.backoff import AUTHENTICATION, NETWORK
from cmppsvc.codec import (
    ActiveTest,
    ActiveTestResp,
    Connect,
    ConnectResp,
    Deliver,
    DeliverResp,
    SubmitResp,
    Terminate,
    TerminateResp,
)
from cmppsvc.owner import CLOSED, CLOSING, LOGGING_IN, READY
from cmppsvc.protocol import CMPPClientProtocol
from cmppsvc.window import PendingSubmit, SubmitOutcome, SubmitTimeout, SubmitUnknown
from tests.test_protocol_support import (
    PASSWORD,
    START,
    Gateway,
    RecordingOwner,
    make_settings,
    make_submit,
)


class ConnectionTestCase(SynchronousTestCase):
    """A protocol wired to a RecordingOwner and a scripted Gateway."""

    def connect(self, **changes: object) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        self.owner = RecordingOwner()
        self.settings = make_settings(**changes)
        self.protocol = CMPPClientProtocol(self.settings, self.clock, self.owner)
        self.gateway = Gateway(self.protocol, self.clock, self.settings.version)
        self.events: list[dict] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def ready(self, **changes: object) -> None:
        self.connect(**changes)
        self.gateway.login()
        self.assertEqual(self.protocol.state, READY)

    def submit(self) -> tuple[PendingSubmit, list]:
        """Send one submit now; return its record and a list collecting its result."""
        results: list = []
        deferred: Deferred = Deferred()
        deferred.addBoth(results.append)
        record = PendingSubmit(make_submit(), deferred.callback, deferred.errback, None)
        self.protocol.send_submit(record, self.clock.seconds())
        self.protocol.flush()
        return record, results

    def log_text(self) -> str:
        return "\n".join(formatEvent(event) for event in self.events)


class LoginTests(ConnectionTestCase):
    """Nothing but CONNECT before Status 0; refusals logged once and classified."""

    def test_connect_is_first_and_only(self) -> None:
        self.connect(heartbeat_interval=5.0)
        (connect,) = self.gateway.received()
        self.assertIsInstance(connect, Connect)
        self.assertEqual(connect.source_addr, "901234")
        self.assertEqual(connect.version, 0x20)
        moment = datetime.datetime.fromtimestamp(START)
        self.assertEqual(connect.timestamp, int(moment.strftime("%m%d%H%M%S")))
        self.assertEqual(self.protocol.state, LOGGING_IN)

        # The gateway's ACTIVE_TEST cannot be answered yet, no heartbeat starts.
        self.gateway.send(ActiveTest(seq=70))
        self.clock.advance(20)
        self.assertEqual(self.gateway.received(), [])

    def test_status_zero_makes_ready(self) -> None:
        self.connect()
        self.gateway.login()
        self.assertEqual(self.owner.states, [LOGGING_IN, READY])
        self.assertEqual(self.protocol.connected_since, START)
        self.assertEqual(self.owner.opened, 1)

    def test_refusal_logged_once_and_classified(self) -> None:
        self.connect()
        self.gateway.login(status=3)
        self.assertEqual(
            self.owner.failures,
            [(AUTHENTICATION, 3, "login refused: Status 3 (authentication error)")],
        )
        self.assertTrue(self.gateway.closed)
        refused = [e for e in self.events if "login refused" in e["log_format"]]
        self.assertEqual(len(refused), 1)
        line = formatEvent(refused[0])
        for fact in ("901234", "127.0.0.1:7890", "authentication error", "3"):
            self.assertIn(fact, line)
        self.assertNotIn(PASSWORD, self.log_text())
        self.clock.advance(0)
        self.assertEqual(self.protocol.state, CLOSED)

    def test_unanswered_login_is_network_failure(self) -> None:
        self.connect(response_timeout=10.0)
        self.clock.advance(9)
        self.assertEqual(self.owner.failures, [])
        self.clock.advance(2)
        self.assertEqual(self.owner.failures[0][0], NETWORK)
        self.assertTrue(self.gateway.transport.disconnected)

    def test_authenticator_mismatch_is_a_warning(self) -> None:
        self.connect()
        (connect,) = self.gateway.received()
        self.gateway.send(
            ConnectResp(status=0, authenticator_ismg=b"x" * 16, seq=connect.seq)
        )
        self.assertEqual(self.protocol.state, READY)
        self.assertIn("AuthenticatorISMG does not match", self.log_text())


class SubmitTests(ConnectionTestCase):
    """Answers resolve submits; timeouts resend the same seq; late answers go on."""

    def test_answer_resolves_with_outcome(self) -> None:
        self.ready()
        seen_before_write = []
        deferred: Deferred = Deferred()
        results: list = []
        deferred.addCallback(results.append)
        record = PendingSubmit(
            make_submit(),
            deferred.callback,
            deferred.errback,
            lambda seq: seen_before_write.append((seq, self.gateway.transport.value())),
        )
        self.protocol.send_submit(record, self.clock.seconds())
        self.protocol.flush()
        (sent,) = self.gateway.received()
        self.assertEqual(seen_before_write, [(sent.seq, b"")])
        self.assertEqual(self.protocol.window_free(), 15)

        self.clock.advance(2)
        self.gateway.send(SubmitResp(msg_id=99, result=0, seq=sent.seq))
        self.assertEqual(
            results,
            [SubmitOutcome(sent.seq, 99, 0, "success", START, START + 2, 1, False)],
        )
        self.assertEqual(self.protocol.window_free(), 16)

    def test_timeout_resends_same_seq_then_fails(self) -> None:
        self.ready(response_timeout=10.0, attempts=3, heartbeat_interval=1000.0)
        record, results = self.submit()
        (first,) = self.gateway.received()
        self.clock.advance(10)
        (second,) = self.gateway.received()
        self.assertEqual(second.seq, first.seq)
        self.clock.advance(10)
        (third,) = self.gateway.received()
        self.assertEqual(third.seq, first.seq)
        self.assertEqual(results, [])

        self.clock.advance(10)
        self.assertIsInstance(results[0].value, SubmitTimeout)
        self.assertIn("3 sends", results[0].value.reason)
        self.assertEqual(self.protocol.outstanding, {})

        late = SubmitResp(msg_id=5, result=0, seq=first.seq)
        self.gateway.send(late)
        self.assertEqual(self.owner.late, [(first.seq, late)])

    def test_answer_to_a_resend_resolves(self) -> None:
        self.ready(response_timeout=10.0)
        record, results = self.submit()
        (first,) = self.gateway.received()
        self.clock.advance(10)
        self.gateway.send(SubmitResp(msg_id=7, result=0, seq=first.seq))
        self.assertEqual(results[0].msg_id, 7)
        self.assertEqual(results[0].attempts, 2)

    def test_duplicate_sequence_is_unknown(self) -> None:
        self.ready()
        record, results = self.submit()
        (sent,) = self.gateway.received()
        self.gateway.send(SubmitResp(msg_id=1, result=3, seq=sent.seq))
        self.assertIsInstance(results[0].value, SubmitUnknown)

    def test_other_results_are_outcomes_with_meaning(self) -> None:
        self.ready(version=0x30)
        record, results = self.submit()
        (sent,) = self.gateway.received()
        self.gateway.send(SubmitResp(msg_id=1, result=13, seq=sent.seq))
        self.assertEqual(results[0].result, 13)
        self.assertIn("Dest_terminal_Id", results[0].reason)

    def test_flow_control_goes_to_owner(self) -> None:
        self.ready()
        record, results = self.submit()
        (sent,) = self.gateway.received()
        self.gateway.send(SubmitResp(msg_id=0, result=8, seq=sent.seq))
        self.assertEqual(self.owner.flow_controlled_records, [record])
        self.assertEqual(results, [])
        self.assertEqual(self.protocol.outstanding, {})


class GatewayRequestTests(ConnectionTestCase):
    """ACTIVE_TEST, DELIVER and TERMINATE are answered at once, window or not."""

    def test_answers_with_full_window_in_one_write(self) -> None:
        self.ready(window=1)
        self.submit()
        self.gateway.received()
        self.assertEqual(self.protocol.window_free(), 0)

        writes = []
        self.gateway.transport.write = writes.append
        deliver = Deliver(msg_id=42, dest_id="10690001", msg_content=b"hi", seq=900)
        self.gateway.send(ActiveTest(seq=800), deliver)
        self.assertEqual(len(writes), 1)
        self.gateway.transport.io.write(writes[0])
        self.assertEqual(
            self.gateway.received(),
            [ActiveTestResp(seq=800), DeliverResp(msg_id=42, result=0, seq=900)],
        )
        self.assertEqual([p.msg_id for p in self.owner.delivered], [42])

    def test_malformed_deliver_answered_structure_error(self) -> None:
        self.ready()
        body = struct.pack(">Q", 4242) + b"\x00" * 5
        self.gateway.wire.dataReceived(
            struct.pack(">III", 12 + len(body), 5, 61) + body
        )
        self.assertEqual(
            self.gateway.received(), [DeliverResp(msg_id=4242, result=1, seq=61)]
        )
        self.assertEqual(self.protocol.state, READY)

    def test_unknown_command_skipped(self) -> None:
        self.ready()
        self.gateway.wire.dataReceived(struct.pack(">III", 12, 0x77, 9))
        self.gateway.send(ActiveTest(seq=10))
        self.assertEqual(self.gateway.received(), [ActiveTestResp(seq=10)])
        self.assertIn("0x00000077", self.log_text())

    def test_broken_framing_drops(self) -> None:
        self.ready()
        self.gateway.wire.dataReceived(struct.pack(">III", 5, 4, 1))
        self.assertTrue(self.gateway.transport.disconnected)
        self.assertEqual(self.owner.failures[0][0], NETWORK)

    def test_gateway_terminate_answered_and_closed(self) -> None:
        self.ready()
        record, results = self.submit()
        self.gateway.received()
        self.gateway.send(Terminate(seq=55))
        self.assertEqual(self.gateway.received(), [TerminateResp(seq=55)])
        self.assertEqual(self.protocol.state, CLOSING)
        self.clock.advance(0)
        self.assertEqual(self.protocol.state, CLOSED)
        self.assertEqual(self.owner.lost, [record])


class HeartbeatTests(ConnectionTestCase):
    """ACTIVE_TEST after C idle; N unanswered in a row drop a silent link."""

    def test_idle_link_gets_active_test(self) -> None:
        self.ready(heartbeat_interval=30.0, response_timeout=10.0)
        self.clock.advance(29)
        self.assertEqual(self.gateway.received(), [])
        self.clock.advance(1)
        (probe,) = self.gateway.received()
        self.assertIsInstance(probe, ActiveTest)
        self.gateway.send(ActiveTestResp(seq=probe.seq))
        self.clock.advance(20)
        self.assertEqual(self.gateway.received(), [])
        self.clock.advance(10)
        self.assertIsInstance(self.gateway.received()[0], ActiveTest)

    def test_silent_link_dropped_after_n(self) -> None:
        self.ready(heartbeat_interval=30.0, response_timeout=10.0, attempts=3)
        self.clock.advance(30)
        probes = self.gateway.received()
        self.clock.advance(10)
        probes += self.gateway.received()
        self.clock.advance(10)
        probes += self.gateway.received()
        self.assertEqual(len(probes), 3)
        self.assertEqual({p.seq for p in probes}, {probes[0].seq})
        self.assertFalse(self.gateway.transport.disconnected)
        self.clock.advance(10)
        self.assertTrue(self.gateway.transport.disconnected)
        self.assertEqual(self.owner.failures[0][0], NETWORK)

    def test_traffic_proves_life(self) -> None:
        self.ready(heartbeat_interval=30.0, response_timeout=10.0, attempts=2)
        self.clock.advance(30)
        self.gateway.received()
        self.gateway.send(ActiveTest(seq=500))
        self.clock.advance(30)
        self.assertFalse(self.gateway.transport.disconnected)


class StopTests(ConnectionTestCase):
    """Graceful stop: bounded wait for answers, TERMINATE, close."""

    def test_waits_for_answers_then_terminates(self) -> None:
        self.ready(stop_timeout=5.0)
        record, results = self.submit()
        (sent,) = self.gateway.received()
        closed: list = []
        self.protocol.stop().addCallback(closed.append)
        self.assertEqual(self.protocol.state, CLOSING)
        self.assertEqual(self.gateway.received(), [])

        self.gateway.send(SubmitResp(msg_id=3, result=0, seq=sent.seq))
        self.assertEqual(results[0].msg_id, 3)
        (terminate,) = self.gateway.received()
        self.assertIsInstance(terminate, Terminate)
        self.gateway.send(TerminateResp(seq=terminate.seq))
        self.clock.advance(0)
        self.assertEqual(closed, [None])

    def test_wait_is_bounded(self) -> None:
        self.ready(stop_timeout=5.0)
        record, results = self.submit()
        self.gateway.received()
        closed: list = []
        self.protocol.stop().addCallback(closed.append)
        self.clock.advance(5)
        (terminate,) = self.gateway.received()
        self.assertIsInstance(terminate, Terminate)
        self.clock.advance(5)
        self.assertTrue(self.gateway.transport.disconnected)
        self.clock.advance(0)
        self.assertEqual(closed, [None])
        self.assertEqual(self.owner.lost, [record])
