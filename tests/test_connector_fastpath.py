# test-case-name: tests.test_connector_fastpath
"""The connector's Deferred-free submit, cancelling, and the immediate abort()."""

from __future__ import annotations

from cmppsvc.codec import Submit, SubmitResp
from cmppsvc.connector import (
    ChannelStopped,
    SubmitOutcome,
    SubmitUnknown,
)
from cmppsvc.owner import CLOSED
from tests.test_connector import ConnectorTestCase
from tests.test_protocol_support import make_submit


class CallbackSubmitTests(ConnectorTestCase):
    """``submit_with_callbacks`` ends each submit once, like ``submit``."""

    def send(self) -> tuple[list, list, list, object]:
        answered: list = []
        failed: list = []
        seqs: list = []
        handle = self.connector.submit_with_callbacks(
            make_submit(), answered.append, failed.append, seqs.append
        )
        return answered, failed, seqs, handle

    def test_answered_with_outcome(self) -> None:
        self.ready()
        answered, failed, seqs, _ = self.send()
        (sent,) = self.answer(self.endpoint.gateway)
        self.assertEqual(seqs, [sent.seq])
        (outcome,) = answered
        self.assertIsInstance(outcome, SubmitOutcome)
        self.assertEqual((outcome.seq, outcome.msg_id), (sent.seq, 1000 + sent.seq))
        self.assertEqual(failed, [])

    def test_not_running_fails_at_once(self) -> None:
        self.ready()
        self.connector.stopService()
        answered, failed, _, _ = self.send()
        self.assertEqual(answered, [])
        self.assertIsInstance(failed[0], ChannelStopped)

    def test_cancelled_while_queued_is_never_sent(self) -> None:
        self.ready(window=1)
        first = self.send()
        answered, failed, seqs, handle = self.send()
        handle.cancel()
        gateway = self.endpoint.gateway
        self.answer(gateway)
        self.assertEqual(len(first[0]), 1)
        self.assertEqual(gateway.received(), [])
        self.assertEqual((answered, failed, seqs), ([], [], []))

    def test_cancelled_deferred_is_never_sent(self) -> None:
        self.ready(window=1)
        self.submit()
        cancelled = self.connector.submit(make_submit())
        cancelled.addErrback(lambda failure: None)
        cancelled.cancel()
        gateway = self.endpoint.gateway
        self.answer(gateway)
        self.assertEqual(gateway.received(), [])


class AbortTests(ConnectorTestCase):
    """``abort()`` closes every connection now and stops reconnecting."""

    def test_abort_closes_everything(self) -> None:
        self.start(connections=2, window=1, rate=1000)
        for gateway in self.endpoint.gateways:
            gateway.login()
        sent = [self.submit(), self.submit()]
        queued = self.submit()
        self.connector.abort()
        self.assertIsInstance(queued[0].value, ChannelStopped)
        for gateway in self.endpoint.gateways:
            self.assertTrue(gateway.transport.aborted)
        self.clock.advance(0)
        for results in sent:
            self.assertIsInstance(results[0].value, SubmitUnknown)
        self.assertEqual(self.connector.status()["state"], CLOSED)
        self.assertIsInstance(self.submit()[0].value, ChannelStopped)
        self.clock.advance(1000)
        self.assertEqual(len(self.endpoint.attempts), 2)

    def test_abort_during_graceful_stop(self) -> None:
        self.ready(window=1, stop_timeout=5.0)
        self.submit()
        stopped: list = []
        self.connector.stopService().addCallback(stopped.append)
        self.connector.abort()
        self.clock.advance(0)
        self.assertEqual(stopped, [None])
        self.assertEqual(self.connector.status()["state"], CLOSED)
        self.clock.advance(1000)
        self.assertEqual(len(self.endpoint.attempts), 1)

    def test_abort_before_login(self) -> None:
        self.start()
        self.connector.abort()
        self.clock.advance(1000)
        self.assertEqual(len(self.endpoint.attempts), 1)
        self.assertEqual(self.connector.status()["state"], CLOSED)


class AnswerTypes(ConnectorTestCase):
    """Late answers after a callback submit failed still reach the hook."""

    def test_late_answer_after_timeout(self) -> None:
        self.ready(response_timeout=4.0, attempts=1, heartbeat_interval=1000.0)
        failed: list = []
        self.connector.submit_with_callbacks(
            Submit(dest_terminal_ids=("13800138000",), msg_content=b"x"),
            lambda outcome: None,
            failed.append,
        )
        (sent,) = self.endpoint.gateway.received()
        self.clock.advance(5)
        self.assertEqual(type(failed[0]).__name__, "SubmitTimeout")
        self.endpoint.gateway.send(SubmitResp(msg_id=1, result=0, seq=sent.seq))
        self.assertEqual(self.late, [sent.seq])
