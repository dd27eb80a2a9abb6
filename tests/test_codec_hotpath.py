# The object-free shortcuts agree with the general codec, byte for byte.
"""cmppsvc.codec.hotpath against encode/decode."""

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from cmppsvc.codec import (
    VERSION_20,
    VERSION_30,
    CodecError,
    Deliver,
    DeliverResp,
    StatusReport,
    SubmitResp,
    decode,
    encode,
)
from cmppsvc.codec.hotpath import (
    deliver_resp_frame,
    report_deliver,
    report_deliver_length,
    submit_resp_fields,
)

versions = st.sampled_from([VERSION_20, 0x21, VERSION_30])
msg_ids = st.integers(0, 2**64 - 1)
seqs = st.integers(0, 2**32 - 1)
results = st.integers(0, 255)


class HotPathTests(SynchronousTestCase):
    """Same values, same bytes, same refusals."""

    @given(versions, msg_ids, results, seqs)
    def test_submit_resp_fields_match_decode(self, version, msg_id, result, seq):
        frame = encode(SubmitResp(msg_id=msg_id, result=result, seq=seq), version)
        pdu = decode(frame, version)
        self.assertEqual(submit_resp_fields(frame), (pdu.seq, pdu.msg_id, pdu.result))

    @given(versions, msg_ids, results, seqs)
    def test_deliver_resp_frame_matches_encode(self, version, msg_id, result, seq):
        expected = encode(DeliverResp(msg_id=msg_id, result=result, seq=seq), version)
        self.assertEqual(deliver_resp_frame(msg_id, result, seq, version), expected)

    def test_wrong_frames_refused(self):
        frame = encode(SubmitResp(msg_id=1, result=0, seq=2), VERSION_20)
        error = self.assertRaises(CodecError, submit_resp_fields, frame[:-1])
        self.assertFalse(error.fatal)
        not_submit = encode(DeliverResp(msg_id=1, result=0, seq=2), VERSION_20)
        self.assertRaises(CodecError, submit_resp_fields, not_submit)

    def test_out_of_range_refused(self):
        self.assertRaises(CodecError, deliver_resp_frame, 2**64, 0, 1, VERSION_30)
        self.assertRaises(CodecError, deliver_resp_frame, 1, 256, 1, VERSION_20)


terminals = st.text(alphabet="0123456789", min_size=0, max_size=21)
short_texts = st.text(alphabet="0123456789ABCxyz", max_size=10)


class ReportDeliverTests(SynchronousTestCase):
    """``report_deliver`` reads the usual status report as ``decode`` does."""

    @given(
        versions,
        msg_ids,
        msg_ids,
        seqs,
        terminals,
        terminals,
        short_texts,
        st.sampled_from(["DELIVRD", "UNDELIV", "EXPIRED", "", "MA:0001"]),
    )
    def test_matches_decode(
        self, version, msg_id, report_id, seq, source, dest, service, stat
    ):
        pdu = Deliver(
            msg_id=msg_id,
            dest_id="10690001",
            service_id=service,
            tp_pid=1,
            tp_udhi=0,
            msg_fmt=0,
            src_terminal_id=source,
            src_terminal_type=1 if version >= VERSION_30 else 0,
            registered_delivery=1,
            link_id="L1" if version >= VERSION_30 else "",
            seq=seq,
            report=StatusReport(
                msg_id=report_id,
                stat=stat,
                submit_time="2412041600",
                done_time="2412041601",
                dest_terminal_id=dest,
                smsc_sequence=seq,
            ),
        )
        frame = encode(pdu, version)
        self.assertEqual(len(frame), report_deliver_length(version))
        self.assertEqual(report_deliver(frame, seq, version), decode(frame, version))

    def test_other_frames_are_left_to_decode(self):
        mo = Deliver(msg_id=1, src_terminal_id="1380", msg_content=b"x" * 60, seq=2)
        for version in (VERSION_20, VERSION_30):
            frame = encode(mo, version)
            self.assertIsNone(report_deliver(frame, 2, version))
            self.assertIsNone(report_deliver(frame[:-1], 2, version))
        # A 3.0-size report inside a 2.0 DELIVER is not the usual layout.
        frame_20 = encode(
            Deliver(registered_delivery=1, msg_content=b"\0" * 71, seq=1), VERSION_20
        )
        self.assertIsNone(report_deliver(frame_20, 1, VERSION_20))
        self.assertIsNotNone(decode(frame_20, VERSION_20).report)
