# -*- test-case-name: tests.test_codec,tests.test_codec_properties -*-
"""A plain interpreter of the layouts in ``layouts.py``: encode and decode any PDU body.

It checks every field and names the one at fault, so it is also the diagnostic path
behind the fast encoders and decoders in ``fast.py``.
"""

from __future__ import annotations

import struct
from typing import Any

from cmppsvc.codec.constants import HEADER_LENGTH, MAX_PDU_LENGTH
from cmppsvc.codec.errors import CodecError
from cmppsvc.codec.layouts import (
    CONTENT,
    DESTS,
    FIXED_SIZE,
    RAW,
    TAIL_TEXT,
    TAIL_ZEROS,
    TEXT,
    U8,
    U32,
    U64,
    ZEROS,
)
from cmppsvc.codec.octets import DECODED, octets_from_text

HEADER = struct.Struct(">III")
_INTEGER = {U8: struct.Struct(">B"), U32: struct.Struct(">I"), U64: struct.Struct(">Q")}
_MAX_COUNT = {"Dest_terminal_Id": 99, "Dest_Id": 99}
_MISSING = object()


def _integer(value: Any, kind: str, where: str) -> bytes:
    if not isinstance(value, int):
        raise CodecError(f"{where} must be an integer, got {type(value).__name__}")
    limit = 1 << (8 * FIXED_SIZE[kind])
    if not 0 <= value < limit:
        raise CodecError(f"{where} = {value} is outside 0..{limit - 1}")
    return _INTEGER[kind].pack(value)


def _text(value: Any, size: int, where: str) -> bytes:
    try:
        data = octets_from_text(value, size)
    except (TypeError, UnicodeError) as error:
        raise CodecError(f"{where} is not encodable text: {error}") from None
    except ValueError:
        encoded = value.encode("gbk") if isinstance(value, str) else value
        raise CodecError(
            f"{where} is {len(encoded)} bytes long, the field holds {size}"
        ) from None
    return data.ljust(size, b"\0")


def encode_body(pdu: Any, layout: tuple) -> bytes:
    """The body of ``pdu`` laid out by ``layout``; CodecError names a bad field."""
    parts = []
    for kind, wire, attribute, size in layout:
        where = f"{pdu.name}.{wire}"
        if kind in (ZEROS, TAIL_ZEROS):
            parts.append(bytes(size))
            continue
        value = getattr(pdu, attribute, _MISSING)
        if value is _MISSING:
            raise CodecError(f"{where} is missing ({type(pdu).__name__})")
        if kind in _INTEGER:
            parts.append(_integer(value, kind, where))
        elif kind in (TEXT, TAIL_TEXT):
            parts.append(_text(value, size, where))
        elif kind == RAW:
            if not isinstance(value, (bytes, bytearray)) or len(value) > size:
                raise CodecError(f"{where} must be at most {size} bytes")
            parts.append(bytes(value).ljust(size, b"\0"))
        elif kind == DESTS:
            if isinstance(value, (str, bytes)) or len(value) > _MAX_COUNT[wire]:
                raise CodecError(
                    f"{where} must be a sequence of at most {_MAX_COUNT[wire]} numbers"
                )
            parts.append(_INTEGER[U8].pack(len(value)))
            for index, number in enumerate(value):
                parts.append(_text(number, size, f"{where}[{index}]"))
        elif kind == CONTENT:
            if not isinstance(value, (bytes, bytearray)) or len(value) > 255:
                raise CodecError(f"{where} must be bytes, at most 255 (Msg_Length)")
            parts.append(_INTEGER[U8].pack(len(value)))
            parts.append(bytes(value))
    return b"".join(parts)


def frame(command_id: int, seq: Any, body: bytes, name: str) -> bytes:
    """Header plus body, checking the Sequence_Id and the frame bound."""
    length = HEADER_LENGTH + len(body)
    if length > MAX_PDU_LENGTH:
        raise CodecError(f"{name} would be {length} bytes, above {MAX_PDU_LENGTH}")
    _integer(seq, U32, f"{name}.Sequence_Id")
    return HEADER.pack(length, command_id, seq) + body


def decode_body(
    data: bytes, offset: int, layout: tuple, name: str, seq: int, command_id: int
) -> dict[str, Any]:
    """Field values by attribute name from ``data[offset:]``.

    Raises a non-fatal CodecError naming the PDU, the field and the byte counts when the
    body is shorter than its fields or a count runs past the end.
    """
    end = len(data)
    values: dict[str, Any] = {}

    def short(wire: str, needed: int) -> CodecError:
        return CodecError(
            f"{name} body too short at {wire}: needs {needed - offset_start} bytes, "
            f"has {end - offset_start}",
            seq=seq,
            command_id=command_id,
        )

    offset_start = offset
    for kind, wire, attribute, size in layout:
        if kind in (TAIL_TEXT, TAIL_ZEROS):
            if kind == TAIL_TEXT:
                values[attribute] = DECODED[bytes(data[offset:end])]
            offset = end
            continue
        if kind in (DESTS, CONTENT):
            if offset + 1 > end:
                raise short("DestUsr_tl" if kind == DESTS else "Msg_Length", offset + 1)
            count = data[offset]
            offset += 1
            width = count * size if kind == DESTS else count
            if offset + width > end:
                label = "DestUsr_tl" if kind == DESTS else "Msg_Length"
                raise CodecError(
                    f"{name}.{label} = {count} runs past the end: {wire} needs "
                    f"{width} bytes at body offset {offset - offset_start}, "
                    f"{end - offset} remain",
                    seq=seq,
                    command_id=command_id,
                )
            if kind == DESTS:
                values[attribute] = tuple(
                    DECODED[bytes(data[start : start + size])]
                    for start in range(offset, offset + width, size)
                )
            else:
                values[attribute] = bytes(data[offset : offset + width])
            offset += width
            continue
        if offset + size > end:
            raise short(wire, offset + size)
        if kind in _INTEGER:
            values[attribute] = _INTEGER[kind].unpack_from(data, offset)[0]
        elif kind == TEXT:
            values[attribute] = DECODED[bytes(data[offset : offset + size])]
        elif kind == RAW:
            values[attribute] = bytes(data[offset : offset + size])
        offset += size
    return values
