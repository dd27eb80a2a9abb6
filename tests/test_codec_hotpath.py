# The object-free shortcuts agree with the general codec, byte for byte.
"""cmppsvc.codec.hotpath against encode/decode."""

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from cmppsvc.codec import (
    VERSION_20,
    VERSION_30,
    CodecError,
    DeliverResp,
    SubmitResp,
    decode,
    encode,
)
from cmppsvc.codec.hotpath import deliver_resp_frame, submit_resp_fields

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
