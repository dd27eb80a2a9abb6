# -*- test-case-name: tests.test_codec_longsms -*-
"""Long messages: split a text into concatenated segments (reference 8.2).

Capacities, in bytes of Msg_Content including the UDH (6 bytes, or 7 with a 16-bit
reference):

* UCS2 (Msg_Fmt 8) and GBK (15): one SMS holds ``min(2 * words_len, 140)`` bytes, i.e.
  70 characters; a segment holds that minus the UDH, rounded down to whole UCS2 units:
  67 characters (66 with the 16-bit reference).
* ASCII (0): one SMS holds up to 159 bytes (the spec's "< 160"); a segment holds 140
  minus the UDH, 134 characters (133), the conservative figure every gateway accepts
  rather than the GSM 7-bit 153.  ``words_len`` does not apply to ASCII.
* Binary (bytes): 140 bytes single, 140 minus the UDH per segment.

No segment ever ends inside a character: a UTF-16 surrogate pair and a GBK double byte
stay whole.  A text longer than ``words_max_len`` characters is refused with
MessageTooLong, before anything is sent.
"""

from __future__ import annotations

import attrs

from cmppsvc.codec.text import (
    MSG_FMT_ASCII,
    MSG_FMT_GBK,
    MSG_FMT_UCS2,
    choose_msg_fmt,
    encode_text,
)
from cmppsvc.codec.udh import UDH_LENGTH_8, UDH_LENGTH_16, concat_udh

SMS_BYTES = 140
"""Msg_Content bytes of one SMS (Msg_Length <= 140 outside ASCII)."""

ASCII_SINGLE_BYTES = 159
"""Msg_Content bytes of one unsplit ASCII SMS (spec: Msg_Length < 160)."""

MAX_SEGMENTS = 255
"""Pk_total and the UDH total are one byte."""


class MessageTooLong(ValueError):  # noqa: N818 (public name fixed by contract)
    """The text exceeds the channel's wordsMaxlen (or 255 segments).

    Not a CodecError: nothing was wrong on the wire, the message is refused before
    sending.
    """


class UnencodableText(ValueError):
    """The text holds a character its Msg_Fmt cannot carry (an emoji in GBK).

    The message names the field, the first such character and its position in
    the text.
    """

    _NAMES = {MSG_FMT_ASCII: "ASCII", MSG_FMT_GBK: "GBK", MSG_FMT_UCS2: "UCS2"}

    def __init__(self, text: str, msg_fmt: int, error: UnicodeEncodeError) -> None:
        # Encoding unit by unit reports a position within one character, so
        # the position in the whole text is found again here.
        position = next(
            (
                index
                for index, character in enumerate(text)
                if character == error.object
            ),
            error.start,
        )
        name = self._NAMES.get(msg_fmt, f"Msg_Fmt {msg_fmt}")
        super().__init__(
            f"text: character {error.object[error.start : error.end]!r} at position "
            f"{position} cannot be sent as {name} (Msg_Fmt {msg_fmt}); "
            "UCS2 (msgformat 8) carries every character"
        )


@attrs.define(slots=True, frozen=True)
class Segment:
    """One SUBMIT's worth of a message: content (UDH included) and its Pk fields."""

    content: bytes
    tp_udhi: int
    pk_total: int
    pk_number: int
    msg_fmt: int


def split_message(
    text: str | bytes,
    msg_fmt: int | None = None,
    words_len: int = 70,
    words_max_len: int = 500,
    reference: int = 0,
    udh16: bool = False,
) -> list[Segment]:
    """The segments of ``text`` in ``msg_fmt`` (None: chosen from the text).

    A text that fits one SMS gives one segment without UDH (TP_udhi 0, Pk 1/1).
    ``reference`` is the concatenation reference (masked to 8 or 16 bits); use a new
    one per long message to the same handset.  Raises MessageTooLong when the text has
    more than ``words_max_len`` characters, and UnencodableText when it holds
    characters ``msg_fmt`` cannot carry.
    """
    if msg_fmt is None:
        msg_fmt = 4 if isinstance(text, bytes) else choose_msg_fmt(text)
    if len(text) > words_max_len:
        raise MessageTooLong(
            f"message is {len(text)} characters long, the channel allows at most "
            f"{words_max_len} (wordsMaxlen)"
        )

    single, per_segment = _capacity(msg_fmt, words_len, udh16)
    try:
        # Most messages fit one SMS: encode the whole text once and only cut
        # it into indivisible units when it has to be split.
        whole = encode_text(text, msg_fmt)
        if len(whole) <= single:
            return [Segment(whole, 0, 1, 1, msg_fmt)]
        units = _units(text, msg_fmt)
    except UnicodeEncodeError as error:
        raise UnencodableText(text, msg_fmt, error) from None

    chunks = _pack(units, per_segment)
    if len(chunks) > MAX_SEGMENTS:
        raise MessageTooLong(
            f"message needs {len(chunks)} segments, at most {MAX_SEGMENTS} are possible"
        )
    total = len(chunks)
    return [
        Segment(
            concat_udh(reference, total, number, udh16) + chunk,
            1,
            total,
            number,
            msg_fmt,
        )
        for number, chunk in enumerate(chunks, start=1)
    ]


def _capacity(msg_fmt: int, words_len: int, udh16: bool) -> tuple[int, int]:
    """(bytes of one unsplit SMS, payload bytes per segment)."""
    header = UDH_LENGTH_16 if udh16 else UDH_LENGTH_8
    if msg_fmt == MSG_FMT_ASCII:
        return ASCII_SINGLE_BYTES, SMS_BYTES - header
    if msg_fmt in (MSG_FMT_UCS2, MSG_FMT_GBK):
        single = min(2 * max(words_len, 4), SMS_BYTES)
        per_segment = single - header
        if msg_fmt == MSG_FMT_UCS2:
            per_segment -= per_segment % 2
        return single, per_segment
    return SMS_BYTES, SMS_BYTES - header


def _units(text: str | bytes, msg_fmt: int) -> list[bytes]:
    """The text as indivisible byte units (a character, or a surrogate pair)."""
    if isinstance(text, bytes):
        return [text[index : index + 1] for index in range(len(text))]
    if msg_fmt == MSG_FMT_UCS2:
        # One unit per code point: a character outside the BMP is one 4-byte unit,
        # its surrogate pair, so no cut can fall between the two halves.
        return [character.encode("utf-16-be") for character in text]
    if msg_fmt == MSG_FMT_GBK:
        return [character.encode("gbk") for character in text]
    if msg_fmt == MSG_FMT_ASCII:
        data = text.encode("ascii")
        return [data[index : index + 1] for index in range(len(data))]
    raise TypeError(f"Msg_Fmt {msg_fmt} carries bytes, not text")


def _pack(units: list[bytes], capacity: int) -> list[bytes]:
    """Greedy: fill each chunk with whole units up to ``capacity`` bytes."""
    chunks: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for unit in units:
        if size + len(unit) > capacity:
            chunks.append(b"".join(current))
            current, size = [], 0
        current.append(unit)
        size += len(unit)
    if current:
        chunks.append(b"".join(current))
    return chunks
