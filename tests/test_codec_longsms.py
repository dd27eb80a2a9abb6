# Tests for cmppsvc.codec.longsms, udh and reassembly: splitting and MO reassembly.
"""Long messages: capacities per Msg_Fmt, whole characters, and reassembly."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from cmppsvc.codec import CodecError, Deliver
from cmppsvc.codec.longsms import MessageTooLong, UnencodableText, split_message
from cmppsvc.codec.reassembly import Reassembler
from cmppsvc.codec.udh import concat_udh, find_concatenation, split_udh

CHINESE = "中华人民共和国短信测试"


def chinese(count: int) -> str:
    return (CHINESE * (count // len(CHINESE) + 1))[:count]


def deliver_segment(content: bytes, msg_fmt: int = 8, udhi: int = 1) -> Deliver:
    return Deliver(
        dest_id="10658012",
        src_terminal_id="13800138000",
        msg_fmt=msg_fmt,
        tp_udhi=udhi,
        msg_content=content,
        link_id="LINK",
    )


class SplitTests(SynchronousTestCase):
    """split_message capacities and segment fields."""

    def test_70_chinese_fit_one_ucs2_sms(self) -> None:
        segments = split_message(chinese(70), 8)
        self.assertEqual(len(segments), 1)
        only = segments[0]
        self.assertEqual((only.tp_udhi, only.pk_total, only.pk_number), (0, 1, 1))
        self.assertEqual(only.content, chinese(70).encode("utf-16-be"))

    def test_71_chinese_become_two_segments(self) -> None:
        segments = split_message(chinese(71), 8, reference=0x2A)
        self.assertEqual(len(segments), 2)
        for number, segment in enumerate(segments, start=1):
            self.assertEqual(segment.content[:6], bytes((5, 0, 3, 0x2A, 2, number)))
            self.assertEqual((segment.tp_udhi, segment.pk_total), (1, 2))
            self.assertEqual(segment.pk_number, number)
            self.assertLessEqual(len(segment.content) - 6, 67 * 2)
        self.assertEqual(len(segments[0].content), 6 + 134)
        joined = b"".join(segment.content[6:] for segment in segments)
        self.assertEqual(joined.decode("utf-16-be"), chinese(71))

    def test_16_bit_reference_gives_66_per_segment(self) -> None:
        segments = split_message(chinese(140), 8, reference=0x1234, udh16=True)
        self.assertEqual(segments[0].content[:7], bytes((6, 8, 4, 0x12, 0x34, 3, 1)))
        self.assertEqual(len(segments[0].content), 7 + 132)
        self.assertEqual(len(segments), 3)

    def test_surrogate_pair_never_split(self) -> None:
        text = "a" * 66 + "😀" + "b" * 10
        segments = split_message(text, 8)
        first = segments[0].content[6:]
        self.assertEqual(len(first), 132)
        self.assertEqual(first.decode("utf-16-be"), "a" * 66)
        self.assertTrue(segments[1].content[6:].decode("utf-16-be").startswith("😀"))

    def test_ascii_limits(self) -> None:
        self.assertEqual(len(split_message("x" * 159, 0)), 1)
        segments = split_message("x" * 160, 0)
        self.assertEqual([len(s.content) for s in segments], [140, 6 + 26])

    def test_gbk_limits_and_double_bytes(self) -> None:
        self.assertEqual(len(split_message(chinese(70), 15)), 1)
        text = "a" + chinese(70)
        segments = split_message(text, 15)
        self.assertEqual(len(segments), 2)
        first = segments[0].content[6:]
        self.assertEqual(len(first), 133)  # 134 would cut a double byte
        self.assertEqual(first.decode("gbk"), text[:67])

    def test_words_len_of_channel(self) -> None:
        self.assertEqual(len(split_message(chinese(60), 8, words_len=60)), 1)
        segments = split_message(chinese(61), 8, words_len=60)
        self.assertEqual(len(segments[0].content), 120)

    def test_too_long_is_refused_clearly(self) -> None:
        error = self.assertRaises(MessageTooLong, split_message, chinese(501), 8)
        self.assertIn("501", str(error))
        self.assertIn("500", str(error))
        self.assertIsInstance(error, ValueError)
        self.assertNotIsInstance(error, CodecError)
        self.assertEqual(len(split_message(chinese(500), 8)), 8)

    def test_format_chosen_from_text(self) -> None:
        self.assertEqual(split_message("hello")[0].msg_fmt, 0)
        self.assertEqual(split_message("héllo")[0].msg_fmt, 8)
        self.assertEqual(split_message(b"\x01\x02")[0].msg_fmt, 4)

    @settings(max_examples=100, deadline=None)
    @given(
        st.text(max_size=400).filter(lambda text: "\0" not in text),
        st.booleans(),
        st.integers(0, 0xFFFF),
    )
    def test_ucs2_split_rejoins(self, text: str, wide: bool, reference: int) -> None:
        segments = split_message(text, 8, reference=reference, udh16=wide)
        if len(segments) == 1:
            self.assertEqual(segments[0].content.decode("utf-16-be"), text)
            return
        header = 7 if wide else 6
        pieces = []
        for segment in segments:
            self.assertLessEqual(len(segment.content), 140)
            pieces.append(segment.content[header:].decode("utf-16-be"))
        self.assertEqual("".join(pieces), text)


class UnencodableTextTests(SynchronousTestCase):
    """A character the Msg_Fmt cannot carry is refused with a clear reason."""

    def test_emoji_in_gbk_names_the_character_and_its_position(self):
        with self.assertRaises(UnencodableText) as caught:
            split_message("abc\U0001f600d", 15)
        message = str(caught.exception)
        self.assertIn("text:", message)
        self.assertIn("position 3", message)
        self.assertIn("GBK", message)

    def test_chinese_in_ascii(self):
        error = self.assertRaises(UnencodableText, split_message, "ab中", 0)
        self.assertIn("position 2", str(error))
        self.assertIsInstance(error, ValueError)


class UdhTests(SynchronousTestCase):
    def test_elements_and_errors(self) -> None:
        content = bytes((11, 0x05, 4, 0x0B, 0x84, 0x23, 0xF0)) + concat_udh(7, 2, 1)[1:]
        content += b"xy"
        elements, payload = split_udh(content)
        self.assertEqual(payload, b"xy")
        self.assertEqual(find_concatenation(elements), (7, 2, 1, False))
        for bad in (b"", b"\x05\x00\x03", b"\x03\x00\x05\x01"):
            self.assertRaises(CodecError, split_udh, bad)


class ReassemblyTests(SynchronousTestCase):
    """Long MO messages from out-of-order, duplicated and decorated segments."""

    def segments(self, text: str, wide: bool = False, reference: int = 9) -> list:
        return split_message(text, 8, reference=reference, udh16=wide)

    def test_out_of_order_with_duplicate(self) -> None:
        text = chinese(150)
        parts = self.segments(text)
        self.assertEqual(len(parts), 3)
        reassembler = Reassembler()
        order = [parts[2], parts[0], parts[2], parts[0]]
        for part in order:
            self.assertIsNone(reassembler.add(deliver_segment(part.content), now=1.0))
        message = reassembler.add(deliver_segment(parts[1].content), now=2.0)
        self.assertEqual(message.text, text)
        self.assertTrue(message.complete)
        self.assertEqual((message.received, message.total), (3, 3))
        self.assertEqual(message.link_id, "LINK")
        self.assertEqual(len(reassembler), 0)

    def test_16_bit_reference_and_other_elements(self) -> None:
        text = chinese(100)
        reassembler = Reassembler()
        result = None
        for part in reversed(self.segments(text, wide=True, reference=0xBEEF)):
            elements, payload = split_udh(part.content)
            port = (0x05, bytes((0x0B, 0x84, 0x23, 0xF0)))
            header = b"".join(
                bytes((iei, len(data))) + data for iei, data in [port, *elements]
            )
            content = bytes((len(header),)) + header + payload
            result = reassembler.add(deliver_segment(content, udhi=0x40), now=0.0)
        self.assertEqual(result.text, text)
        self.assertEqual(result.reference, 0xBEEF)

    def test_groups_are_kept_apart(self) -> None:
        reassembler = Reassembler()
        first = self.segments(chinese(80), reference=1)
        second = self.segments(chinese(90), reference=2)
        reassembler.add(deliver_segment(first[0].content), now=0)
        reassembler.add(deliver_segment(second[0].content), now=0)
        self.assertEqual(len(reassembler), 2)
        message = reassembler.add(deliver_segment(second[1].content), now=0)
        self.assertEqual(message.text, chinese(90))

    def test_single_messages_pass_through(self) -> None:
        reassembler = Reassembler()
        plain = reassembler.add(deliver_segment(b"hi", msg_fmt=0, udhi=0), now=0)
        self.assertEqual((plain.text, plain.complete), ("hi", True))
        port_only = bytes((6, 0x05, 4, 0, 1, 0, 2)) + "好".encode("utf-16-be")
        self.assertEqual(reassembler.add(deliver_segment(port_only), now=0).text, "好")

    def test_expiry_returns_what_expired(self) -> None:
        reassembler = Reassembler(timeout=60)
        parts = self.segments(chinese(150))
        reassembler.add(deliver_segment(parts[0].content), now=100)
        reassembler.add(deliver_segment(parts[2].content), now=130)
        self.assertEqual(reassembler.expire(now=159), [])
        expired = reassembler.expire(now=160)
        self.assertEqual(len(expired), 1)
        self.assertFalse(expired[0].complete)
        self.assertEqual((expired[0].received, expired[0].total), (2, 3))
        self.assertEqual(expired[0].missing, (2,))
        self.assertEqual(len(reassembler), 0)

    def test_bounded_number_of_groups(self) -> None:
        reassembler = Reassembler(max_groups=2)
        for reference in range(3):
            part = self.segments(chinese(80), reference=reference)[0]
            reassembler.add(deliver_segment(part.content), now=reference)
        self.assertEqual(len(reassembler), 2)
        evicted = reassembler.expire(now=3)
        self.assertEqual([message.reference for message in evicted], [0])

    def test_bad_segment_number(self) -> None:
        content = concat_udh(1, 2, 3) + b"x"
        self.assertRaises(CodecError, Reassembler().add, deliver_segment(content), 0)
