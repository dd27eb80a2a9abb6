# -*- test-case-name: tests.test_outbound -*-
"""Outgoing messages as they arrive from the MT stream, validated.

An MT stream entry carries `to` (one number, or several separated by commas),
`text`, and optionally `id` (the caller's own message id) and `ext` (an
extension appended to the channel's source number). Anything else in the entry
is ignored. A bad entry is refused with a reason that names the field; it is
reported as a `failed` event and acknowledged, so it never blocks the stream.
"""

from __future__ import annotations

import re

import attrs

# Bounds on what one stream entry may ask for, checked before any work is done.
MAX_DESTINATIONS = 100
MAX_TEXT_CHARACTERS = 10_000
MAX_ID_LENGTH = 128

#: Longest `to` that is split: per number a "+", 21 digits, the comma and room
#: for spaces around it.
MAX_TO_CHARACTERS = MAX_DESTINATIONS * 32

_NUMBER = re.compile(r"\+?[0-9]{1,21}")
_EXTENSION = re.compile(r"[0-9]{0,20}")
# A part of `to` between commas, and what makes it more than blanks: counting
# the parts a split would keep, in linear time and without copying them.
_PART = re.compile(r"[^,]+")
_NOT_BLANK = re.compile(r"\S")


class InvalidMessage(ValueError):
    """An MT entry that cannot be sent; the message names the field and why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@attrs.frozen
class MTMessage:
    """One validated outgoing message."""

    entry_id: str
    """The MT stream entry id; acknowledged once every part has an outcome."""

    message_id: str
    """The caller's `id`, or the stream entry id when the entry had none."""

    destinations: tuple[str, ...]
    text: str
    extension: str = ""


def parse_mt_entry(
    entry_id: str,
    fields: dict[str, str],
    source_number: str = "",
    max_extension_digits: int = 20,
) -> MTMessage:
    """Validate one MT stream entry.

    `source_number` and `max_extension_digits` come from the channel record
    (`number` and `expidLen`): the extension may not be longer than the
    channel allows, and the whole source number must fit Src_Id (21 bytes).
    """
    message_id = fields.get("id") or entry_id
    if not is_valid_message_id(message_id):
        raise InvalidMessage(
            "id", f"{len(message_id)} characters, at most {MAX_ID_LENGTH}"
        )

    destinations = _parse_destinations(fields.get("to", ""))
    text = fields.get("text")
    if text is None or text == "":
        raise InvalidMessage("text", "missing or empty")
    if len(text) > MAX_TEXT_CHARACTERS:
        raise InvalidMessage(
            "text", f"{len(text)} characters, above the hard limit of 10000"
        )

    extension = fields.get("ext", "")
    if not _EXTENSION.fullmatch(extension):
        raise InvalidMessage("ext", "must be digits only")
    if len(extension) > max_extension_digits:
        raise InvalidMessage(
            "ext",
            f"{len(extension)} digits, the channel allows {max_extension_digits}",
        )
    if len(source_number) + len(extension) > 21:
        raise InvalidMessage(
            "ext",
            f"source number {source_number!r} plus extension is "
            f"{len(source_number) + len(extension)} digits, Src_Id holds 21",
        )

    return MTMessage(entry_id, message_id, destinations, text, extension)


def is_valid_message_id(value: str) -> bool:
    """Whether `value` may stand as the caller's `id` in events (non-empty,
    at most MAX_ID_LENGTH characters)."""
    return 0 < len(value) <= MAX_ID_LENGTH


def _parse_destinations(raw: str) -> tuple[str, ...]:
    """Split `to` on commas, trim spaces, check each number."""
    if len(raw) > MAX_TO_CHARACTERS:
        # Not split (the parts would be allocated); the numbers are counted in
        # place, so a list of too many numbers is refused for that.
        count = _count_numbers(raw)
        if count > MAX_DESTINATIONS:
            raise _too_many_numbers(count)
        raise InvalidMessage(
            "to", f"{len(raw)} characters, at most {MAX_TO_CHARACTERS}"
        )

    numbers = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not numbers:
        raise InvalidMessage("to", "missing or empty")
    if len(numbers) > MAX_DESTINATIONS:
        raise _too_many_numbers(len(numbers))
    for number in numbers:
        if not _NUMBER.fullmatch(number):
            raise InvalidMessage("to", f"{number!r} is not a phone number")
    return numbers


def _count_numbers(raw: str) -> int:
    """How many numbers splitting `raw` would give, without splitting it."""
    return sum(
        1
        for part in _PART.finditer(raw)
        if _NOT_BLANK.search(raw, part.start(), part.end())
    )


def _too_many_numbers(count: int) -> InvalidMessage:
    return InvalidMessage(
        "to", f"{count} numbers, at most {MAX_DESTINATIONS} per entry"
    )
