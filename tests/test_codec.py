# Byte-exact vector tests for cmppsvc.codec (reference section 11 and our own).
"""Every PDU type in both versions, byte for byte, and the codec's error paths."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from cmppsvc.codec import (
    MAX_PDU_LENGTH,
    VERSION_20,
    VERSION_30,
    ActiveTest,
    ActiveTestResp,
    Cancel,
    CancelResp,
    CodecError,
    Connect,
    ConnectResp,
    Deliver,
    DeliverResp,
    FrameBuffer,
    Fwd,
    FwdResp,
    Query,
    QueryResp,
    StatusReport,
    Submit,
    SubmitResp,
    Terminate,
    TerminateResp,
    UnknownCommand,
    decode,
    encode,
)
from cmppsvc.codec.auth import (
    authenticator_ismg,
    authenticator_source,
    check_authenticator_ismg,
    connect_timestamp,
)
from cmppsvc.codec.msgid import compose_msg_id

SECRET = "Secret#2024"
AUTH_SOURCE = bytes.fromhex("0ae9f6e3bcd24d4732c2ea3deed084af")
SUBMIT_MSG_ID = 0xC1BDEB4003E90001
DELIVER_MSG_ID = 0xC1BDF08003E9004D

V1_CONNECT = bytes.fromhex(
    "0000002700000001000000013930313233340ae9f6e3bcd24d4732c2ea3deed084af3047b6a895"
)
V1B_CONNECT_RESP_20 = bytes.fromhex(
    "0000001e800000010000000100581d92452a105191fd7d8ff97f161d0b20"
)
V1C_CONNECT_RESP_30 = bytes.fromhex(
    "000000218000000100000001000000002a765b7f5ac144dc6b1467824f2f869330"
)
V2_SUBMIT_RESP_20 = bytes.fromhex("000000158000000400000002c1bdeb4003e9000100")
V2_SUBMIT_RESP_30 = bytes.fromhex("000000188000000400000003c1bdeb4003e9000200000008")
V3_DELIVER_REPORT_30 = bytes.fromhex(
    "000000b40000000500000010c1bdf08003e9004d313036353830313200000000000000000000"
    "0000004d58583030303100000000000031333830303133383030300000000000000000000000"
    "00000000000000000000000147c1bdeb4003e9000144454c4956524432343132303331353330"
    "3234313230333135333131333830303133383030300000000000000000000000000000000000"
    "00000000000000070000000000000000000000000000000000000000"
)
V3_DELIVER_RESP_30 = bytes.fromhex("000000188000000500000010c1bdf08003e9004d00000000")
V4_ACTIVE_TEST = bytes.fromhex("0000000c0000000800000005")
V4_ACTIVE_TEST_RESP = bytes.fromhex("0000000d800000080000000500")
V5_SUBMIT_30 = bytes.fromhex(
    "000000e100000004000000060000000000000000020101014d58583030303100000000000000"
    "0000000000000000000000000000000000000000000000000000000000000001083930313233"
    "3430313030303030300000000000000000000000000000000000000000000000000000000000"
    "0000000000313036353830313200000000000000000000000000013133383030313338303030"
    "000000000000000000000000000000000000000000001e0500032a020160a876849a8c8bc178"
    "01662f0031003200330034003500360000000000000000000000000000000000000000"
)

V5_SUBMIT = Submit(
    msg_id=0,
    pk_total=2,
    pk_number=1,
    registered_delivery=1,
    msg_level=1,
    service_id="MXX0001",
    fee_user_type=0,
    fee_terminal_id="",
    fee_terminal_type=0,
    tp_pid=0,
    tp_udhi=1,
    msg_fmt=8,
    msg_src="901234",
    fee_type="01",
    fee_code="000000",
    valid_time="",
    at_time="",
    src_id="10658012",
    dest_terminal_ids=("13800138000",),
    dest_terminal_type=0,
    msg_content=bytes.fromhex("0500032a0201")
    + "您的验证码是123456".encode("utf-16-be"),
    link_id="",
    seq=6,
)

V3_REPORT = StatusReport(
    msg_id=SUBMIT_MSG_ID,
    stat="DELIVRD",
    submit_time="2412031530",
    done_time="2412031531",
    dest_terminal_id="13800138000",
    smsc_sequence=7,
)

V3_DELIVER = Deliver(
    msg_id=DELIVER_MSG_ID,
    dest_id="10658012",
    service_id="MXX0001",
    tp_pid=0,
    tp_udhi=0,
    msg_fmt=0,
    src_terminal_id="13800138000",
    src_terminal_type=0,
    registered_delivery=1,
    msg_content=b"",
    link_id="",
    seq=0x10,
    report=V3_REPORT,
)


class GocmppSelfCheckTests(SynchronousTestCase):
    """The gocmpp vectors the reference reproduces as a self-check."""

    def test_authenticator_source(self) -> None:
        value = authenticator_source("900001", "888888", 1021080510)
        self.assertEqual(value.hex(), "90d00c1d517abd0b4f65f6bcf8535d16")

    def test_authenticator_ismg_both_widths(self) -> None:
        source = bytes.fromhex("90d00c1d517abd0b4f65f6bcf8535d16")
        one = authenticator_ismg(0, source, "888888", status_size=1)
        four = authenticator_ismg(0, source, "888888", status_size=4)
        self.assertEqual(one.hex(), "6c0b846e25bab6daa4ed1c466e0f4bd8")
        self.assertEqual(four.hex(), "7942977274098cf210ab0c16c367bc8d")

    def test_checker_accepts_either_width(self) -> None:
        source = bytes.fromhex("90d00c1d517abd0b4f65f6bcf8535d16")
        for digest in (
            "6c0b846e25bab6daa4ed1c466e0f4bd8",
            "7942977274098cf210ab0c16c367bc8d",
        ):
            self.assertTrue(
                check_authenticator_ismg(bytes.fromhex(digest), 0, source, "888888")
            )
        self.assertFalse(check_authenticator_ismg(bytes(16), 0, source, "888888"))
        self.assertFalse(
            check_authenticator_ismg(
                bytes.fromhex("6c0b846e25bab6daa4ed1c466e0f4bd8"), 0, source, "x"
            )
        )


class ReferenceVectorTests(SynchronousTestCase):
    """Section 11 of the reference, encoded and decoded byte for byte."""

    def assertBothWays(self, pdu: object, wire: bytes, version: int) -> None:
        self.assertEqual(encode(pdu, version).hex(), wire.hex())
        self.assertEqual(decode(wire, version), pdu)

    def test_v1_connect(self) -> None:
        from datetime import datetime

        timestamp = connect_timestamp(datetime(2024, 12, 3, 15, 30, 45))
        self.assertEqual(timestamp, 1203153045)
        self.assertEqual(authenticator_source("901234", SECRET, timestamp), AUTH_SOURCE)
        pdu = Connect("901234", AUTH_SOURCE, VERSION_30, timestamp, seq=1)
        self.assertBothWays(pdu, V1_CONNECT, VERSION_30)
        self.assertEqual(encode(pdu, VERSION_20), V1_CONNECT)

    def test_january_timestamp_keeps_leading_zero(self) -> None:
        from datetime import datetime

        timestamp = connect_timestamp(datetime(2025, 1, 3, 4, 5, 6))
        self.assertEqual(timestamp, 103040506)
        material_hash = authenticator_source("901234", SECRET, timestamp)
        import hashlib

        expected = hashlib.md5(b"901234" + bytes(9) + b"Secret#2024" + b"0103040506")
        self.assertEqual(material_hash, expected.digest())

    def test_v1b_connect_resp_20(self) -> None:
        ismg = authenticator_ismg(0, AUTH_SOURCE, SECRET, status_size=1)
        self.assertEqual(ismg.hex(), "581d92452a105191fd7d8ff97f161d0b")
        self.assertBothWays(
            ConnectResp(0, ismg, 0x20, seq=1), V1B_CONNECT_RESP_20, 0x20
        )

    def test_v1c_connect_resp_30(self) -> None:
        ismg = authenticator_ismg(0, AUTH_SOURCE, SECRET, status_size=4)
        self.assertEqual(ismg.hex(), "2a765b7f5ac144dc6b1467824f2f8693")
        self.assertBothWays(
            ConnectResp(0, ismg, 0x30, seq=1), V1C_CONNECT_RESP_30, 0x30
        )

    def test_connect_resp_read_by_length(self) -> None:
        """A 3.0 answer on a 2.0 link and the reverse are read by body length."""
        self.assertEqual(decode(V1C_CONNECT_RESP_30, VERSION_20).version, 0x30)
        self.assertEqual(decode(V1B_CONNECT_RESP_20, VERSION_30).version, 0x20)

    def test_v2_submit_resp(self) -> None:
        self.assertEqual(SUBMIT_MSG_ID, compose_msg_id(12, 3, 15, 30, 45, 1001, 1))
        self.assertBothWays(
            SubmitResp(SUBMIT_MSG_ID, 0, seq=2), V2_SUBMIT_RESP_20, 0x20
        )
        resp = SubmitResp(SUBMIT_MSG_ID + 1, 8, seq=3)
        self.assertBothWays(resp, V2_SUBMIT_RESP_30, VERSION_30)
        self.assertEqual(decode(V2_SUBMIT_RESP_30, VERSION_20), resp)
        self.assertEqual(decode(V2_SUBMIT_RESP_20, VERSION_30).result, 0)

    def test_v3_deliver_report(self) -> None:
        self.assertEqual(DELIVER_MSG_ID, compose_msg_id(12, 3, 15, 31, 2, 1001, 77))
        self.assertEqual(encode(V3_DELIVER, VERSION_30), V3_DELIVER_REPORT_30)
        decoded = decode(V3_DELIVER_REPORT_30, VERSION_30)
        self.assertEqual(decoded.report, V3_REPORT)
        self.assertEqual(len(decoded.msg_content), 71)
        self.assertEqual(encode(decoded, VERSION_30), V3_DELIVER_REPORT_30)

    def test_v3_deliver_resp(self) -> None:
        pdu = DeliverResp(DELIVER_MSG_ID, 0, seq=0x10)
        self.assertBothWays(pdu, V3_DELIVER_RESP_30, VERSION_30)

    def test_v4_active_test(self) -> None:
        for version in (VERSION_20, VERSION_30):
            self.assertBothWays(ActiveTest(seq=5), V4_ACTIVE_TEST, version)
            self.assertBothWays(ActiveTestResp(seq=5), V4_ACTIVE_TEST_RESP, version)

    def test_v5_submit_30(self) -> None:
        self.assertBothWays(V5_SUBMIT, V5_SUBMIT_30, VERSION_30)


def pad(text: str, size: int) -> bytes:
    """An Octet String written out by hand: ASCII, right-padded with NUL."""
    return text.encode("ascii").ljust(size, b"\0")


def header(length: int, command_id: int, seq: int) -> bytes:
    return (
        length.to_bytes(4, "big")
        + command_id.to_bytes(4, "big")
        + seq.to_bytes(4, "big")
    )


def u(value: int, size: int) -> bytes:
    return value.to_bytes(size, "big")


class OwnVectorTests(SynchronousTestCase):
    """Every other PDU type in both versions, against frames laid out by hand."""

    def assertBothWays(self, pdu: object, wire: bytes, version: int) -> None:
        self.assertEqual(encode(pdu, version).hex(), wire.hex())
        self.assertEqual(decode(wire, version), pdu)

    def test_terminate(self) -> None:
        for version in (VERSION_20, VERSION_30):
            self.assertBothWays(Terminate(seq=9), header(12, 2, 9), version)
            self.assertBothWays(
                TerminateResp(seq=9), header(12, 0x80000002, 9), version
            )

    def test_submit_20_two_destinations(self) -> None:
        content = b"hello"
        body = (
            u(0, 8)
            + bytes((1, 1, 1, 9))
            + pad("MXX0001", 10)
            + bytes((3,))
            + pad("13900000000", 21)
            + bytes((0, 0, 0))
            + pad("901234", 6)
            + pad("02", 2)
            + pad("10", 6)
            + pad("241203153045032+", 17)
            + pad("", 17)
            + pad("10658012123", 21)
            + bytes((2,))
            + pad("13800138000", 21)
            + pad("8613800138001", 21)
            + bytes((len(content),))
            + content
            + bytes(8)
        )
        self.assertEqual(len(body), 126 + 2 * 21 + 5)
        pdu = Submit(
            registered_delivery=1,
            msg_level=9,
            service_id="MXX0001",
            fee_user_type=3,
            fee_terminal_id="13900000000",
            msg_fmt=0,
            msg_src="901234",
            fee_type="02",
            fee_code="10",
            valid_time="241203153045032+",
            src_id="10658012123",
            dest_terminal_ids=("13800138000", "8613800138001"),
            msg_content=content,
            seq=0xFFFFFFFF,
        )
        wire = header(12 + len(body), 4, 0xFFFFFFFF) + body
        self.assertBothWays(pdu, wire, VERSION_20)

    def test_deliver_mo_20_and_30(self) -> None:
        text = "你好".encode("utf-16-be")
        common = u(0xF000000000000001, 8) + pad("10658012123", 21) + pad("MXX0001", 10)
        body_20 = (
            common
            + bytes((0, 0, 8))
            + pad("13800138000", 21)
            + bytes((0, len(text)))
            + text
            + bytes(8)
        )
        body_30 = (
            common
            + bytes((0, 0, 8))
            + pad("13800138000", 32)
            + bytes((1, 0, len(text)))
            + text
            + pad("LINK0001", 20)
        )
        self.assertEqual(len(body_20), 73 + 4)
        self.assertEqual(len(body_30), 97 + 4)
        fields = dict(
            msg_id=0xF000000000000001,
            dest_id="10658012123",
            service_id="MXX0001",
            msg_fmt=8,
            src_terminal_id="13800138000",
            msg_content=text,
            seq=77,
        )
        self.assertBothWays(
            Deliver(**fields), header(12 + len(body_20), 5, 77) + body_20, VERSION_20
        )
        self.assertBothWays(
            Deliver(**fields, src_terminal_type=1, link_id="LINK0001"),
            header(12 + len(body_30), 5, 77) + body_30,
            VERSION_30,
        )

    def test_deliver_report_20(self) -> None:
        report = (
            u(SUBMIT_MSG_ID, 8)
            + pad("UNDELIV", 7)
            + pad("2412031530", 10)
            + pad("2412031531", 10)
            + pad("13800138000", 21)
            + u(9, 4)
        )
        body = (
            u(DELIVER_MSG_ID, 8)
            + pad("10658012", 21)
            + pad("MXX0001", 10)
            + bytes((0, 0, 0))
            + pad("13800138000", 21)
            + bytes((1, 60))
            + report
            + bytes(8)
        )
        wire = header(145, 5, 3) + body
        decoded = decode(wire, VERSION_20)
        self.assertEqual(
            decoded.report,
            StatusReport(
                SUBMIT_MSG_ID, "UNDELIV", "2412031530", "2412031531", "13800138000", 9
            ),
        )
        self.assertEqual(encode(decoded, VERSION_20), wire)
        rebuilt = Deliver(
            msg_id=DELIVER_MSG_ID,
            dest_id="10658012",
            service_id="MXX0001",
            src_terminal_id="13800138000",
            registered_delivery=1,
            seq=3,
            report=decoded.report,
        )
        self.assertEqual(encode(rebuilt, VERSION_20), wire)

    def test_aspire_60_byte_report_on_30_link(self) -> None:
        """A 3.0 DELIVER carrying a 2.0-layout report and a short LinkID."""
        report = (
            u(SUBMIT_MSG_ID, 8)
            + pad("DELIVRD", 7)
            + pad("2412031530", 10)
            + pad("2412031531", 10)
            + pad("13800138000", 21)
            + u(1, 4)
        )
        body = (
            u(DELIVER_MSG_ID, 8)
            + pad("10658012", 21)
            + pad("MXX0001", 10)
            + bytes((0, 0, 0))
            + pad("13800138000", 32)
            + bytes((0, 1, 60))
            + report
            + pad("L", 8)
        )
        decoded = decode(header(12 + len(body), 5, 4) + body, VERSION_30)
        self.assertEqual(decoded.report.stat, "DELIVRD")
        self.assertEqual(decoded.report.dest_terminal_id, "13800138000")
        self.assertEqual(decoded.link_id, "L")

    def test_query_and_resp(self) -> None:
        query_body = pad("20241203", 8) + bytes((1,)) + pad("MXX0001", 10) + bytes(8)
        counters = b"".join(u(value, 4) for value in range(1, 9))
        resp_body = pad("20241203", 8) + bytes((1,)) + pad("MXX0001", 10) + counters
        query = Query("20241203", 1, "MXX0001", seq=4)
        resp = QueryResp("20241203", 1, "MXX0001", *range(1, 9), seq=4)
        for version in (VERSION_20, VERSION_30):
            self.assertBothWays(query, header(39, 6, 4) + query_body, version)
            self.assertBothWays(resp, header(63, 0x80000006, 4) + resp_body, version)

    def test_cancel_and_resp(self) -> None:
        for version in (VERSION_20, VERSION_30):
            self.assertBothWays(
                Cancel(SUBMIT_MSG_ID, seq=8),
                header(20, 7, 8) + u(SUBMIT_MSG_ID, 8),
                version,
            )
        self.assertBothWays(
            CancelResp(1, seq=8), header(13, 0x80000007, 8) + b"\x01", VERSION_20
        )
        self.assertBothWays(
            CancelResp(1, seq=8), header(16, 0x80000007, 8) + u(1, 4), VERSION_30
        )
        # SMSGate sends the 4-byte form on 2.0 links: read by length.
        self.assertEqual(
            decode(header(16, 0x80000007, 8) + u(1, 4), VERSION_20), CancelResp(1, 8)
        )

    def test_fwd_20_and_30(self) -> None:
        prefix = pad("001001", 6) + pad("079101", 6) + bytes((2, 0))
        middle = (
            u(SUBMIT_MSG_ID, 8)
            + bytes((1, 1, 0, 0))
            + pad("MXX0001", 10)
            + bytes((2,))
            + pad("", 21)
        )
        middle_tail = (
            bytes((0, 0, 15))
            + pad("901234", 6)
            + pad("01", 2)
            + pad("000000", 6)
            + pad("", 17)
            + pad("", 17)
            + pad("10658012", 21)
        )
        content = "中".encode("gbk")
        body_20 = (
            prefix
            + middle
            + middle_tail
            + bytes((1,))
            + pad("13800138000", 21)
            + bytes((2,))
            + content
            + bytes(8)
        )
        body_30 = (
            prefix
            + middle
            + pad("PSEUDO", 32)
            + bytes((1,))
            + middle_tail
            + pad("SRCPSEUDO", 32)
            + bytes((1, 0, 1))
            + pad("13800138000", 21)
            + pad("DESTPSEUDO", 32)
            + bytes((1, 2))
            + content
            + pad("LINK", 20)
        )
        self.assertEqual(len(body_20) + 12, 152 + 21 + 2)
        self.assertEqual(len(body_30) + 12, 264 + 21 + 2)
        fields = dict(
            source_id="001001",
            destination_id="079101",
            nodes_count=2,
            msg_id=SUBMIT_MSG_ID,
            service_id="MXX0001",
            fee_user_type=2,
            msg_fmt=15,
            msg_src="901234",
            fee_type="01",
            fee_code="000000",
            src_id="10658012",
            dest_ids=("13800138000",),
            msg_content=content,
            seq=11,
        )
        self.assertBothWays(
            Fwd(**fields), header(len(body_20) + 12, 9, 11) + body_20, 0x20
        )
        full = Fwd(
            **fields,
            fee_terminal_pseudo="PSEUDO",
            fee_terminal_user_type=1,
            src_pseudo="SRCPSEUDO",
            src_user_type=1,
            dest_pseudo="DESTPSEUDO",
            dest_user_type=1,
            link_id="LINK",
        )
        self.assertBothWays(full, header(len(body_30) + 12, 9, 11) + body_30, 0x30)

    def test_fwd_resp(self) -> None:
        body = u(SUBMIT_MSG_ID, 8) + bytes((2, 1))
        resp = FwdResp(SUBMIT_MSG_ID, 2, 1, 9, seq=12)
        self.assertBothWays(resp, header(23, 0x80000009, 12) + body + b"\x09", 0x20)
        self.assertBothWays(resp, header(26, 0x80000009, 12) + body + u(9, 4), 0x30)

    def test_version_21_uses_20_layout(self) -> None:
        self.assertEqual(
            encode(SubmitResp(1, 2, 3), 0x21), encode(SubmitResp(1, 2, 3), 0x20)
        )

    def test_space_padded_and_unterminated_fields(self) -> None:
        wire = bytearray(V3_DELIVER_REPORT_30)
        wire[0x14:0x29] = b"10658012   ".ljust(21, b" ")
        wire[0x36:0x56] = b"1" * 32
        decoded = decode(bytes(wire), VERSION_30)
        self.assertEqual(decoded.dest_id, "10658012")
        self.assertEqual(decoded.src_terminal_id, "1" * 32)

    def test_gbk_octet_field(self) -> None:
        wire = bytearray(V3_DELIVER_REPORT_30)
        wire[0x29:0x33] = "业务".encode("gbk").ljust(10, b"\0")
        self.assertEqual(decode(bytes(wire), VERSION_30).service_id, "业务")
        wire[0x29:0x33] = b"\xff\xfe".ljust(10, b"\0")
        self.assertIn("\ufffd", decode(bytes(wire), VERSION_30).service_id)

    def test_msg_id_top_bit_round_trips(self) -> None:
        for msg_id in (1 << 63, (1 << 64) - 1, 0xC1BDEB4003E90001):
            for version in (VERSION_20, VERSION_30):
                pdu = SubmitResp(msg_id, 0, seq=1)
                self.assertEqual(decode(encode(pdu, version), version).msg_id, msg_id)


class ErrorTests(SynchronousTestCase):
    """Hostile and wrong input: one error type, naming the PDU, field and numbers."""

    def assertCodecError(
        self, function, *args, fatal: bool = False, mentions: tuple[str, ...] = ()
    ) -> CodecError:
        error = self.assertRaises(CodecError, function, *args)
        self.assertEqual(error.fatal, fatal)
        for text in mentions:
            self.assertIn(text, str(error))
        return error

    def test_unknown_command_is_skippable(self) -> None:
        frame = header(16, 0x00000010, 42) + b"abcd"
        error = self.assertCodecError(
            decode, frame, VERSION_30, mentions=("0x00000010",)
        )
        self.assertIsInstance(error, UnknownCommand)
        self.assertEqual((error.seq, error.command_id), (42, 0x10))

    def test_total_length_bounds_are_fatal(self) -> None:
        for length in (0, 11, MAX_PDU_LENGTH + 1, 0xFFFFFFFF):
            buffer = FrameBuffer()
            self.assertCodecError(
                buffer.feed, header(length, 4, 1), fatal=True, mentions=(str(length),)
            )
            self.assertRaises(CodecError, buffer.feed, b"")

    def test_frame_buffer_splits_and_waits(self) -> None:
        stream = V4_ACTIVE_TEST + V1_CONNECT + V4_ACTIVE_TEST_RESP
        buffer = FrameBuffer()
        frames = []
        for index in range(len(stream)):
            frames += buffer.feed(stream[index : index + 1])
        self.assertEqual(frames, [V4_ACTIVE_TEST, V1_CONNECT, V4_ACTIVE_TEST_RESP])
        self.assertEqual(len(buffer), 0)
        self.assertEqual(FrameBuffer().feed(stream), frames)

    def test_frame_mismatch_is_fatal(self) -> None:
        self.assertCodecError(decode, b"\0\0\0", VERSION_30, fatal=True)
        self.assertCodecError(decode, V4_ACTIVE_TEST + b"x", VERSION_30, fatal=True)

    def test_short_body_names_field(self) -> None:
        frame = header(20, 1, 5) + b"901234ab"
        error = self.assertCodecError(
            decode, frame, VERSION_30, mentions=("CONNECT", "AuthenticatorSource", "8")
        )
        self.assertEqual(error.seq, 5)

    def test_response_of_wrong_length(self) -> None:
        self.assertCodecError(
            decode,
            header(22, 0x80000004, 1) + bytes(10),
            VERSION_20,
            mentions=("SUBMIT_RESP", "10", "9 or 12"),
        )

    def test_msg_length_runs_past_end(self) -> None:
        wire = bytearray(V5_SUBMIT_30)
        wire[0xAE] = 200
        self.assertCodecError(
            decode, bytes(wire), VERSION_30, mentions=("SUBMIT", "Msg_Length", "200")
        )

    def test_dest_usr_tl_runs_past_end(self) -> None:
        wire = bytearray(V5_SUBMIT_30)
        wire[0x8C] = 99
        self.assertCodecError(
            decode, bytes(wire), VERSION_30, mentions=("SUBMIT", "DestUsr_tl", "99")
        )

    def test_short_status_report(self) -> None:
        wire = bytearray(V3_DELIVER_REPORT_30)
        wire[0x58] = 30
        del wire[0x59 + 30 : 0x59 + 71]
        wire[0:4] = len(wire).to_bytes(4, "big")
        self.assertCodecError(
            decode, bytes(wire), VERSION_30, mentions=("report", "30", "60")
        )

    def test_encode_refuses_long_field(self) -> None:
        pdu = Submit(src_id="1" * 22, dest_terminal_ids=("1",))
        self.assertCodecError(
            encode, pdu, VERSION_30, mentions=("SUBMIT.Src_Id", "22", "21")
        )
        pdu = Submit(dest_terminal_ids=("1" * 22,))
        self.assertCodecError(
            encode, pdu, VERSION_20, mentions=("Dest_terminal_Id[0]",)
        )
        self.assertEqual(len(encode(pdu, VERSION_30)), 195)

    def test_encode_refuses_bad_values(self) -> None:
        cases = [
            (Submit(pk_total=256, dest_terminal_ids=("1",)), "Pk_total"),
            (Submit(msg_content=bytes(256), dest_terminal_ids=("1",)), "Msg_Content"),
            (Submit(dest_terminal_ids=("1",) * 100), "Dest_terminal_Id"),
            (SubmitResp(msg_id=1 << 64), "Msg_Id"),
            (SubmitResp(result=256), "Result"),
            (Connect(authenticator_source=bytes(17)), "AuthenticatorSource"),
            (ActiveTest(seq=-1), "Sequence_Id"),
            (Submit(service_id=None, dest_terminal_ids=("1",)), "Service_Id"),
        ]
        for pdu, field in cases:
            self.assertCodecError(encode, pdu, VERSION_20, mentions=(field,))
        self.assertEqual(len(encode(SubmitResp(result=256), VERSION_30)), 24)
        self.assertRaises(CodecError, encode, object(), VERSION_30)
