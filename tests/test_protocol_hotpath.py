# test-case-name: tests.test_protocol_hotpath
"""The connection's fast paths agree with the general ones: framing in place,
SUBMIT_RESP and status reports read without the decoder, outcomes as tuples."""

from __future__ import annotations

import struct

from twisted.trial.unittest import SynchronousTestCase

from cmppsvc.backoff import NETWORK
from cmppsvc.codec import (
    ActiveTest,
    ActiveTestResp,
    Deliver,
    DeliverResp,
    StatusReport,
    SubmitResp,
    decode,
    encode,
)
from cmppsvc.owner import READY
from cmppsvc.window import PendingSubmit, SubmitOutcome
from tests.test_protocol import ConnectionTestCase
from tests.test_protocol_support import make_submit


def report(msg_id: int, seq: int, number: str = "13800138000") -> Deliver:
    """A status-report DELIVER in the usual layout."""
    return Deliver(
        msg_id=5000 + seq,
        dest_id="10690001",
        service_id="svc",
        src_terminal_id=number,
        registered_delivery=1,
        seq=seq,
        report=StatusReport(
            msg_id=msg_id,
            stat="DELIVRD",
            submit_time="2412041600",
            done_time="2412041601",
            dest_terminal_id=number,
            smsc_sequence=7,
        ),
    )


class FramingTests(ConnectionTestCase):
    """Frames split anywhere across reads are read the same as whole ones."""

    def traffic(self, version: int) -> tuple[list, bytes]:
        """Three submits sent; the bytes answering them with responses, reports
        and an ACTIVE_TEST, and the records."""
        records = [self.submit()[0] for _ in range(3)]
        sent = self.gateway.received()
        pdus: list = []
        for index, pdu in enumerate(sent):
            pdus.append(SubmitResp(msg_id=100 + index, result=0, seq=pdu.seq))
            pdus.append(report(100 + index, 900 + index))
        pdus.append(ActiveTest(seq=999))
        return records, b"".join(encode(pdu, version) for pdu in pdus)

    def check_every_split(self, version: int) -> None:
        for cut in range(1, 200, 7):
            self.ready(version=version)
            records, data = self.traffic(version)
            self.gateway.wire.dataReceived(data[:cut])
            self.gateway.wire.dataReceived(data[cut:])
            self.assertEqual([r.ended for r in records], [True] * 3)
            self.assertEqual(
                [d.report.msg_id for d in self.owner.delivered], [100, 101, 102]
            )
            answers = self.gateway.received()
            self.assertEqual(
                [type(a) for a in answers].count(DeliverResp), 3, f"cut at {cut}"
            )
            self.assertIn(ActiveTestResp(seq=999), answers)
            self.assertEqual(self.protocol.state, READY)

    def test_split_anywhere_20(self) -> None:
        self.check_every_split(0x20)

    def test_split_anywhere_30(self) -> None:
        self.check_every_split(0x30)

    def test_byte_by_byte(self) -> None:
        self.ready()
        records, data = self.traffic(0x20)
        for index in range(len(data)):
            self.gateway.wire.dataReceived(data[index : index + 1])
        self.assertEqual([r.ended for r in records], [True] * 3)
        self.assertEqual(len(self.owner.delivered), 3)

    def test_bad_length_refused_as_soon_as_it_arrives(self) -> None:
        self.ready()
        self.gateway.wire.dataReceived(struct.pack(">I", 5000))
        self.assertTrue(self.gateway.transport.disconnected)
        self.assertEqual(self.owner.failures[0][0], NETWORK)
        self.assertIn("Total_Length 5000", self.owner.failures[0][2])

        # Nothing more is read from a stream that can no longer be split.
        self.gateway.wire.dataReceived(encode(ActiveTest(seq=3), 0x20))
        self.assertEqual(self.gateway.received(), [])


class ReportFastPathTests(ConnectionTestCase):
    """Status reports reach the owner exactly as ``decode`` reads them."""

    def check(self, version: int, pdu: Deliver) -> None:
        self.ready(version=version)
        frame = encode(pdu, version)
        self.gateway.wire.dataReceived(frame)
        self.assertEqual(self.owner.delivered, [decode(frame, version)])
        self.assertEqual(
            self.gateway.received(),
            [DeliverResp(msg_id=pdu.msg_id, result=0, seq=pdu.seq)],
        )

    def test_report_20(self) -> None:
        self.check(0x20, report(77, 12))

    def test_report_30(self) -> None:
        self.check(0x30, report(77, 12, "8613800138000"))

    def test_mo_message_takes_the_decoder(self) -> None:
        mo = Deliver(msg_id=4, src_terminal_id="13800138000", msg_content=b"hi", seq=3)
        self.check(0x20, mo)


class OutcomeTests(SynchronousTestCase):
    """SubmitOutcome keeps the contract's fields, order and immutability."""

    def test_fields_by_name_and_position(self) -> None:
        outcome = SubmitOutcome(1, 2, 0, "success", 1.0, 1.5, 1)
        self.assertEqual(outcome.resent, False)
        self.assertEqual(outcome, SubmitOutcome(1, 2, 0, "success", 1.0, 1.5, 1, False))
        self.assertEqual(outcome.answered_at - outcome.sent_at, 0.5)
        self.assertRaises(AttributeError, setattr, outcome, "result", 3)


class CallbackTests(ConnectionTestCase):
    """A record's plain callbacks: called once; their exceptions stay with them."""

    def test_answer_calls_answered_once(self) -> None:
        self.ready()
        answered: list = []
        failed: list = []
        record = PendingSubmit(make_submit(), answered.append, failed.append, None)
        self.protocol.send_submit(record, self.clock.seconds())
        self.protocol.flush()
        (sent,) = self.gateway.received()
        self.gateway.send(SubmitResp(msg_id=5, result=0, seq=sent.seq))
        record.fail(Exception("too late"))
        self.assertEqual([o.msg_id for o in answered], [5])
        self.assertEqual(failed, [])

    def test_raising_callback_does_not_break_the_connection(self) -> None:
        self.ready()

        def broken(outcome: object) -> None:
            raise RuntimeError("handler bug")

        record = PendingSubmit(make_submit(), broken, broken, None)
        self.protocol.send_submit(record, self.clock.seconds())
        self.protocol.flush()
        (sent,) = self.gateway.received()
        self.gateway.send(
            SubmitResp(msg_id=5, result=0, seq=sent.seq), ActiveTest(seq=8)
        )
        self.assertEqual(self.gateway.received(), [ActiveTestResp(seq=8)])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(self.protocol.state, READY)
