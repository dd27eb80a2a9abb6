# -*- test-case-name: tests.test_codec_longsms -*-
"""GSM 03.40 User Data Header: the concatenation element of long messages.

Only what long messages need: build the 8-bit (IEI 0x00) or 16-bit (IEI 0x08)
concatenation header, and split a received header into its elements.
"""

from __future__ import annotations

from typing import NamedTuple

from cmppsvc.codec.errors import CodecError

IEI_CONCAT_8 = 0x00
IEI_CONCAT_16 = 0x08
UDH_LENGTH_8 = 6
UDH_LENGTH_16 = 7


class Concatenation(NamedTuple):
    """The concatenation element of a segment: reference, total parts, this part."""

    reference: int
    total: int
    number: int
    wide: bool


def concat_udh(reference: int, total: int, number: int, wide: bool = False) -> bytes:
    """``05 00 03 RR TT NN`` (8-bit reference) or ``06 08 04 RRRR TT NN`` (16-bit)."""
    if wide:
        reference &= 0xFFFF
        return bytes(
            (6, IEI_CONCAT_16, 4, reference >> 8, reference & 0xFF, total, number)
        )
    return bytes((5, IEI_CONCAT_8, 3, reference & 0xFF, total, number))


def split_udh(content: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """The header's (IEI, data) elements and the payload after the header.

    Raises a non-fatal CodecError when the header length or an element runs past
    the end of the content.
    """
    if not content:
        raise CodecError("UDH: content is empty, no UDHL byte")
    header_length = content[0]
    if 1 + header_length > len(content):
        raise CodecError(
            f"UDH: UDHL {header_length} runs past the content's "
            f"{len(content) - 1} bytes"
        )
    elements = []
    offset, end = 1, 1 + header_length
    while offset < end:
        if offset + 2 > end:
            raise CodecError(
                f"UDH: element header at {offset} runs past UDHL {header_length}"
            )
        iei, size = content[offset], content[offset + 1]
        if offset + 2 + size > end:
            raise CodecError(
                f"UDH: element 0x{iei:02x} of {size} bytes runs past "
                f"UDHL {header_length}"
            )
        elements.append((iei, bytes(content[offset + 2 : offset + 2 + size])))
        offset += 2 + size
    return elements, bytes(content[end:])


def find_concatenation(elements: list[tuple[int, bytes]]) -> Concatenation | None:
    """The concatenation element among ``elements``, or None (malformed ones too)."""
    for iei, data in elements:
        if iei == IEI_CONCAT_8 and len(data) == 3:
            return Concatenation(data[0], data[1], data[2], False)
        if iei == IEI_CONCAT_16 and len(data) == 4:
            return Concatenation((data[0] << 8) | data[1], data[2], data[3], True)
    return None


def has_udh(tp_udhi: int) -> bool:
    """Whether TP_udhi says a UDH is present; some gateways send 0x40 (esm_class)."""
    return bool(tp_udhi & 0x41)
