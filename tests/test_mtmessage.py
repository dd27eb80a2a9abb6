# Tests for cmppsvc.mtmessage: MT entries validated, refusals naming the field.
from twisted.trial.unittest import SynchronousTestCase

from cmppsvc.mtmessage import (
    MAX_DESTINATIONS,
    MAX_ID_LENGTH,
    MAX_TO_CHARACTERS,
    InvalidMessage,
    MTMessage,
    is_valid_message_id,
    parse_mt_entry,
)


class UnsplittableText(str):
    """Text that refuses to be split: shows a check works without splitting."""

    def split(self, *args, **kwargs):
        raise AssertionError("split")


def numbers(count: int, separator: str = ",") -> str:
    return separator.join(f"1380000{n:04d}" for n in range(count))


class ParseTests(SynchronousTestCase):
    """The fields of a good entry."""

    def test_fields(self):
        message = parse_mt_entry(
            "1-0",
            {"to": "13800000000, +8613800000001", "text": "hi", "id": "m1", "ext": "7"},
            source_number="1065",
            max_extension_digits=4,
        )
        self.assertEqual(
            message,
            MTMessage("1-0", "m1", ("13800000000", "+8613800000001"), "hi", "7"),
        )

    def test_entry_id_stands_in_for_a_missing_or_empty_id(self):
        for fields in ({}, {"id": ""}):
            fields.update(to="13800000000", text="hi")
            self.assertEqual(parse_mt_entry("1-0", fields).message_id, "1-0")

    def test_id_bound(self):
        self.assertTrue(is_valid_message_id("m" * MAX_ID_LENGTH))
        self.assertFalse(is_valid_message_id("m" * (MAX_ID_LENGTH + 1)))
        self.assertFalse(is_valid_message_id(""))
        with self.assertRaises(InvalidMessage) as caught:
            parse_mt_entry("1-0", {"id": "m" * 129, "to": "1380000", "text": "hi"})
        self.assertEqual(str(caught.exception), "id: 129 characters, at most 128")


class DestinationTests(SynchronousTestCase):
    """`to`: the count rule before the length rule, both before splitting."""

    def refused(self, to: str) -> str:
        with self.assertRaises(InvalidMessage) as caught:
            parse_mt_entry("1-0", {"to": to, "text": "hi"})
        self.assertEqual(caught.exception.field, "to")
        return str(caught.exception)

    def test_too_many_numbers_short_enough_to_split(self):
        self.assertEqual(
            self.refused(numbers(MAX_DESTINATIONS + 1)),
            "to: 101 numbers, at most 100 per entry",
        )

    def test_thousands_of_numbers_refused_by_count(self):
        self.assertEqual(
            self.refused(numbers(2000)), "to: 2000 numbers, at most 100 per entry"
        )

    def test_thousands_of_numbers_counted_without_splitting(self):
        to = UnsplittableText(numbers(2000, separator=" , "))
        self.assertEqual(self.refused(to), "to: 2000 numbers, at most 100 per entry")

    def test_blank_parts_are_not_numbers(self):
        to = UnsplittableText(" , ,," * 1000 + "13800000000")
        self.assertEqual(
            self.refused(to), f"to: {len(to)} characters, at most {MAX_TO_CHARACTERS}"
        )

    def test_a_full_list_of_the_longest_numbers_with_spaces_fits(self):
        to = ", ".join("+" + "8" * 21 for _ in range(MAX_DESTINATIONS))
        message = parse_mt_entry("1-0", {"to": to, "text": "hi"})
        self.assertEqual(len(message.destinations), MAX_DESTINATIONS)

    def test_missing_and_bad_numbers(self):
        self.assertEqual(self.refused(" , "), "to: missing or empty")
        self.assertEqual(self.refused("1380000,abc"), "to: 'abc' is not a phone number")
