# Tests for cmppsvc.mtentries: MT stream entries taken as bounded text.
from twisted.trial.unittest import SynchronousTestCase

from cmppsvc.mtentries import MAX_FIELDS, UnreadableEntry, decode_entry

TOO_LARGE = "larger than the entry limit of 65536 bytes"


class WatchedText(str):
    """Text that records every encoding of itself, to show what is measured."""

    encoded = []

    def encode(self, *args, **kwargs):
        self.encoded.append(len(self))
        return super().encode(*args, **kwargs)


class WatchedBytes(bytes):
    """Bytes that record every decoding of themselves."""

    decoded = []

    def decode(self, *args, **kwargs):
        self.decoded.append(len(self))
        return super().decode(*args, **kwargs)


class DecodeEntryTests(SynchronousTestCase):
    """Readable entries become {field: text}."""

    def test_text_fields(self):
        self.assertEqual(
            decode_entry(["to", "13800000000", "text", "你好", "id", "m1"]),
            {"to": "13800000000", "text": "你好", "id": "m1"},
        )

    def test_utf8_bytes_are_decoded(self):
        """A connection that does not decode replies gives bytes: fine."""
        self.assertEqual(
            decode_entry([b"text", "é".encode(), "id", b"m1"]),
            {"text": "é", "id": "m1"},
        )

    def test_near_the_limit_measured_in_utf8_bytes(self):
        self.assertEqual(decode_entry(["a", "é" * 31], limit=64), {"a": "é" * 31})
        with self.assertRaises(UnreadableEntry) as caught:
            decode_entry(["a", "é" * 40], limit=64)
        self.assertEqual(
            str(caught.exception),
            "a: 80 bytes, larger than the entry limit of 64 bytes",
        )


class NotUTF8Tests(SynchronousTestCase):
    """Undecodable fields are named; the caller's id is kept when readable."""

    def refused(self, fields, **options) -> UnreadableEntry:
        with self.assertRaises(UnreadableEntry) as caught:
            decode_entry(fields, **options)
        self.assertIsInstance(caught.exception, ValueError)
        return caught.exception

    def test_text_not_utf8_keeps_the_id(self):
        error = self.refused(["id", "m1", "to", "13800000000", "text", b"\xff\xfe"])
        self.assertEqual(str(error), "text: not UTF-8")
        self.assertEqual(error.message_id, "m1")

    def test_id_listed_after_the_bad_field_is_kept_too(self):
        error = self.refused(["to", b"\xff", "id", "m1"])
        self.assertEqual((str(error), error.message_id), ("to: not UTF-8", "m1"))

    def test_id_not_utf8_is_not_kept(self):
        error = self.refused(["id", b"\xc3", "text", "hi"])
        self.assertEqual((str(error), error.message_id), ("id: not UTF-8", None))

    def test_every_bad_field_is_named(self):
        error = self.refused(["to", b"\xff", "text", b"\xfe", "id", "m1"])
        self.assertEqual(str(error), "to: not UTF-8; text: not UTF-8")

    def test_many_bad_fields_are_counted_after_three(self):
        fields = [item for n in range(5) for item in (f"f{n}", b"\xff")]
        error = self.refused(fields)
        self.assertEqual(
            str(error), "f0: not UTF-8; f1: not UTF-8; f2: not UTF-8; 2 more"
        )

    def test_a_bad_field_name_is_named_by_position(self):
        error = self.refused(["id", "m1", b"\xff", "x"])
        self.assertEqual(str(error), "field 2 name: not UTF-8")
        self.assertEqual(error.message_id, "m1")

    def test_a_long_field_name_is_not_quoted(self):
        error = self.refused(["n" * 65, b"\xff"])
        self.assertEqual(str(error), "field 1: not UTF-8")

    def test_invalid_id_is_not_kept(self):
        error = self.refused(["id", "m" * 129, "text", b"\xff"])
        self.assertIsNone(error.message_id)
        error = self.refused(["id", "", "text", b"\xff"])
        self.assertIsNone(error.message_id)

    def test_values_that_are_not_text(self):
        error = self.refused(["id", "m1", "text", None])
        self.assertEqual(str(error), "text: not text (NoneType)")

    def test_malformed(self):
        error = self.refused(["to"])
        self.assertEqual(str(error), "entry: malformed, not pairs of field and value")
        self.assertIsNone(error.message_id)
        self.refused("to=1")


class OversizedTests(SynchronousTestCase):
    """A large entry is refused naming the field, measured before it is
    decoded or encoded; a small valid id is kept."""

    def setUp(self):
        WatchedText.encoded.clear()
        WatchedBytes.decoded.clear()

    def test_large_text_named_without_encoding_it(self):
        text = WatchedText("x" * (10 * 1024 * 1024))
        with self.assertRaises(UnreadableEntry) as caught:
            decode_entry(["id", "m1", "to", "13800000000", "text", text])
        self.assertEqual(
            str(caught.exception), f"text: 10485760 characters, {TOO_LARGE}"
        )
        self.assertEqual(caught.exception.message_id, "m1")
        self.assertEqual(WatchedText.encoded, [])

    def test_large_bytes_named_without_decoding_them(self):
        text = WatchedBytes(b"\xff" * 70_000)
        with self.assertRaises(UnreadableEntry) as caught:
            decode_entry(["id", b"m1", "text", text])
        self.assertEqual(str(caught.exception), f"text: 70000 bytes, {TOO_LARGE}")
        self.assertEqual(caught.exception.message_id, "m1")
        self.assertEqual(WatchedBytes.decoded, [])

    def test_non_ascii_text_within_the_character_bound_is_encoded_once(self):
        text = WatchedText("é" * 40_000)
        with self.assertRaises(UnreadableEntry) as caught:
            decode_entry(["id", "m1", "text", text])
        self.assertEqual(str(caught.exception), f"text: 80000 bytes, {TOO_LARGE}")
        self.assertEqual(WatchedText.encoded, [40_000])

    def test_large_id_is_named_and_not_kept(self):
        with self.assertRaises(UnreadableEntry) as caught:
            decode_entry(["id", "m" * 70_000, "text", "hi"])
        self.assertEqual(str(caught.exception), f"id: 70000 characters, {TOO_LARGE}")
        self.assertIsNone(caught.exception.message_id)

    def test_fields_together_too_large_name_the_largest(self):
        with self.assertRaises(UnreadableEntry) as caught:
            decode_entry(["id", "m1", "text", "x" * 40, "to", "1" * 20], limit=64)
        self.assertEqual(
            str(caught.exception),
            "entry of 70 bytes is larger than 64 (largest field text: 40 bytes)",
        )
        self.assertEqual(caught.exception.message_id, "m1")

    def test_too_many_fields(self):
        fields = ["id", "m1"] + ["", ""] * MAX_FIELDS
        with self.assertRaises(UnreadableEntry) as caught:
            decode_entry(fields)
        self.assertEqual(
            str(caught.exception), f"entry: {MAX_FIELDS + 1} fields, at most 256"
        )
        self.assertEqual(caught.exception.message_id, "m1")
        self.assertEqual(len(decode_entry(fields[:-2])), 2)

    def test_too_many_fields_keeps_only_a_readable_small_id(self):
        padding = ["", ""] * MAX_FIELDS
        for value, kept in [(b"m1", "m1"), (b"\xff", None), ("m" * 129, None)]:
            with self.assertRaises(UnreadableEntry) as caught:
                decode_entry(["id", value] + padding)
            self.assertEqual(caught.exception.message_id, kept)
