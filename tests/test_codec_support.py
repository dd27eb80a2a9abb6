# Tests for cmppsvc.codec msgid, codes and text.
"""Msg_Id layout and text form, code meanings, and Msg_Fmt text."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from cmppsvc.codec.codes import (
    connect_status,
    deliver_result,
    fwd_result,
    report_stat,
    submit_result,
)
from cmppsvc.codec.msgid import (
    compose_msg_id,
    msg_id_display,
    msg_id_from_text,
    msg_id_text,
    parse_msg_id,
)
from cmppsvc.codec.text import choose_msg_fmt, decode_text, encode_text


class MsgIdTests(SynchronousTestCase):
    def test_reference_examples(self) -> None:
        msg_id = compose_msg_id(12, 3, 15, 30, 45, 1001, 1)
        self.assertEqual(msg_id, 0xC1BDEB4003E90001)
        self.assertEqual(msg_id_text(msg_id), "13960573080094441473")
        self.assertEqual(msg_id_display(msg_id), "1203153045000100100001")
        self.assertEqual(parse_msg_id(0xB2B9DA8000010000), (11, 5, 14, 29, 42, 1, 0))
        self.assertEqual(parse_msg_id(0xB4C5530000010000), (11, 9, 17, 21, 12, 1, 0))

    @settings(max_examples=200)
    @given(st.integers(0, (1 << 64) - 1))
    def test_text_round_trip_unsigned(self, msg_id: int) -> None:
        text = msg_id_text(msg_id)
        self.assertEqual(text, str(msg_id))
        self.assertEqual(msg_id_from_text(text), msg_id)
        self.assertEqual(compose_msg_id(*parse_msg_id(msg_id)), msg_id)

    def test_refuses_out_of_range(self) -> None:
        self.assertRaises(ValueError, msg_id_text, -1)
        self.assertRaises(ValueError, msg_id_text, 1 << 64)
        for bad in ("-1", "01", "", "1e3", str(1 << 64), "١٢"):
            self.assertRaises(ValueError, msg_id_from_text, bad)
        self.assertRaises(ValueError, compose_msg_id, 16, 1, 1, 1, 1, 1, 1)


class CodeTests(SynchronousTestCase):
    def test_known_and_unknown(self) -> None:
        self.assertEqual(str(connect_status(3)), "authentication error")
        self.assertEqual(connect_status(3).chinese, "认证错")
        self.assertEqual(str(submit_result(8)), "flow control error")
        self.assertEqual(str(submit_result(13)), "Dest_terminal_Id error")
        self.assertEqual(str(deliver_result(9)), "other error (code 9)")
        self.assertEqual(str(fwd_result(9)).split(" (")[0], "forward decision error")
        for lookup in (connect_status, submit_result, deliver_result, fwd_result):
            self.assertEqual(str(lookup(150)), "other error (code 150)")
            self.assertEqual(str(lookup(2**32 - 1)), f"other error (code {2**32 - 1})")
        self.assertTrue(submit_result(0).success)

    def test_report_stat(self) -> None:
        self.assertTrue(report_stat("DELIVRD").success)
        self.assertFalse(report_stat("EXPIRED").success)
        self.assertEqual(
            str(report_stat("MB:0008")), "SMSC returned an error (MB:0008)"
        )
        self.assertEqual(str(report_stat("HD:0001")), "other error (code HD:0001)")
        self.assertEqual(str(report_stat("")), "other error (code )")


class TextTests(SynchronousTestCase):
    def test_formats(self) -> None:
        self.assertEqual(encode_text("验证码", 8), "验证码".encode("utf-16-be"))
        self.assertFalse(encode_text("a", 8).startswith(b"\xfe\xff"))
        self.assertEqual(encode_text("验证码", 15), "验证码".encode("gbk"))
        self.assertEqual(decode_text(b"\x00a\x00b", 8), "ab")
        self.assertEqual(decode_text(b"ab\xe9", 0), "ab\xe9")
        self.assertEqual(decode_text("验证".encode("gbk"), 15), "验证")
        for binary in (3, 4, 9, 0x18, 200):
            self.assertEqual(decode_text(b"\x01\xff", binary), b"\x01\xff")
        self.assertRaises(TypeError, encode_text, "x", 4)
        self.assertRaises(UnicodeEncodeError, encode_text, "验", 0)

    def test_choice(self) -> None:
        self.assertEqual(choose_msg_fmt("hello"), 0)
        self.assertEqual(choose_msg_fmt("验证"), 8)
        self.assertEqual(choose_msg_fmt("验证", allow_gbk=True), 15)
        self.assertEqual(choose_msg_fmt("😀", allow_gbk=True), 8)
