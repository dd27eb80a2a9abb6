# -*- test-case-name: tests.test_codec -*-
"""Msg_Id: the 64-bit id the gateway assigns, its fields and its one text form.

Layout (reference 7): month 4 bits, day 5, hour 5, minute 6, second 6, gateway code 22,
sequence 16, most significant first.  Months 8 to 12 set the top bit; the id is always
handled as an unsigned integer, so such ids behave like any other.

Canonical text form, used in events, logs and Redis keys: the unsigned decimal of the
integer without padding (``str(n)``), e.g. ``13960573080094441473``.
"""

from __future__ import annotations

from typing import NamedTuple

MSG_ID_MAX = (1 << 64) - 1


class MsgIdFields(NamedTuple):
    """The parts of a Msg_Id."""

    month: int
    day: int
    hour: int
    minute: int
    second: int
    gateway: int
    sequence: int


_WIDTHS = (("month", 4, 60), ("day", 5, 55), ("hour", 5, 50), ("minute", 6, 44))
_WIDTHS += (("second", 6, 38), ("gateway", 22, 16), ("sequence", 16, 0))


def msg_id_text(msg_id: int) -> str:
    """The canonical text form: unsigned decimal, no padding."""
    if not 0 <= msg_id <= MSG_ID_MAX:
        raise ValueError(f"Msg_Id {msg_id} is outside 0..2**64-1")
    return str(msg_id)


def msg_id_from_text(text: str) -> int:
    """The integer of a canonical text form; ValueError for anything else."""
    if not text.isdigit() or not text.isascii() or (len(text) > 1 and text[0] == "0"):
        raise ValueError(f"not a canonical Msg_Id text: {text!r}")
    value = int(text)
    if value > MSG_ID_MAX:
        raise ValueError(f"Msg_Id {text} is above 2**64-1")
    return value


def compose_msg_id(
    month: int,
    day: int,
    hour: int,
    minute: int,
    second: int,
    gateway: int,
    sequence: int,
) -> int:
    """The 64-bit Msg_Id of its parts; ValueError when a part does not fit its bits."""
    values = (month, day, hour, minute, second, gateway, sequence)
    msg_id = 0
    for (name, width, shift), value in zip(_WIDTHS, values):
        if not 0 <= value < (1 << width):
            raise ValueError(f"Msg_Id {name} {value} does not fit {width} bits")
        msg_id |= value << shift
    return msg_id


def parse_msg_id(msg_id: int) -> MsgIdFields:
    """The parts of a 64-bit Msg_Id (not range-checked: gateways send any value)."""
    return MsgIdFields(
        *((msg_id >> shift) & ((1 << width) - 1) for _name, width, shift in _WIDTHS)
    )


def msg_id_display(msg_id: int) -> str:
    """SMSGate's 22-digit display form: MMDDHHMMSS + gateway (7) + sequence (5).

    For display only; the canonical form is ``msg_id_text``.
    """
    f = parse_msg_id(msg_id)
    return (
        f"{f.month:02d}{f.day:02d}{f.hour:02d}{f.minute:02d}{f.second:02d}"
        f"{f.gateway:07d}{f.sequence:05d}"
    )
