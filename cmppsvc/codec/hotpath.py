# -*- test-case-name: tests.test_codec_hotpath -*-
"""Shortcuts for the three PDUs a busy connection handles most.

At tens of thousands of messages a second a client reads one SUBMIT_RESP and one
status-report DELIVER per message and answers the DELIVER; building a ``SubmitResp``
only to read two fields from it, or a ``DeliverResp`` only to encode it, is a third
of their cost.  These functions give the same values and bytes as ``decode``/
``encode`` (the tests compare them) with fewer objects and steps.  Responses are read
by their length, as ``decode`` reads them: 2.0 and 3.0 differ only in the width of
Result.  ``report_deliver`` reads the usual status report (one fixed-size frame) in
two ``struct`` calls and says None for anything else, which ``decode`` then reads.
"""

from __future__ import annotations

import struct

from cmppsvc.codec import constants as c
from cmppsvc.codec.errors import CodecError
from cmppsvc.codec.octets import DECODED, text_from_octets
from cmppsvc.codec.pdus import Deliver, StatusReport

_SUBMIT_RESP_20 = struct.Struct(">IIIQB")
_SUBMIT_RESP_30 = struct.Struct(">IIIQI")
_DELIVER_RESP_20 = struct.Struct(">IIIQB")
_DELIVER_RESP_30 = struct.Struct(">IIIQI")
_SIZE_20 = _SUBMIT_RESP_20.size
_SIZE_30 = _SUBMIT_RESP_30.size


def submit_resp_fields(frame: bytes) -> tuple[int, int, int]:
    """``(seq, msg_id, result)`` of a whole SUBMIT_RESP frame, 2.0 or 3.0 layout.

    Raises a non-fatal ``CodecError`` (like ``decode``) when the frame is not a
    SUBMIT_RESP of either length.
    """
    size = len(frame)
    if size == _SIZE_20:
        _length, command_id, seq, msg_id, result = _SUBMIT_RESP_20.unpack(frame)
    elif size == _SIZE_30:
        _length, command_id, seq, msg_id, result = _SUBMIT_RESP_30.unpack(frame)
    else:
        raise CodecError(
            f"SUBMIT_RESP of {size} bytes: expected {_SIZE_20} (2.0) or "
            f"{_SIZE_30} (3.0)",
            command_id=c.SUBMIT_RESP,
        )
    if command_id != c.SUBMIT_RESP:
        raise CodecError(
            f"not a SUBMIT_RESP: Command_Id 0x{command_id:08X}", command_id=command_id
        )
    return seq, msg_id, result


def deliver_resp_frame(msg_id: int, result: int, seq: int, version: int) -> bytes:
    """The whole DELIVER_RESP frame answering ``seq``, in ``version``'s layout.

    Raises a non-fatal ``CodecError`` when a value does not fit its field.
    """
    try:
        if version >= c.VERSION_30:
            return _DELIVER_RESP_30.pack(_SIZE_30, c.DELIVER_RESP, seq, msg_id, result)
        return _DELIVER_RESP_20.pack(_SIZE_20, c.DELIVER_RESP, seq, msg_id, result)
    except struct.error as error:
        raise CodecError(f"DELIVER_RESP field out of range: {error}") from None


# A status-report DELIVER whose Msg_Length is the report size of its version: the
# whole frame after the header, and the report inside Msg_Content.
_REPORT_DELIVER_20 = struct.Struct(">12xQ21s10sBBB21sBB60s8x")
_REPORT_DELIVER_30 = struct.Struct(">12xQ21s10sBBB32sBBB71s20s")
_REPORT_20 = struct.Struct(">Q7s10s10s21sI")
_REPORT_30 = struct.Struct(">Q7s10s10s32sI")
REPORT_DELIVER_LENGTH_20 = _REPORT_DELIVER_20.size
REPORT_DELIVER_LENGTH_30 = _REPORT_DELIVER_30.size


def report_deliver_length(version: int) -> int:
    """Total_Length of the usual status-report DELIVER in ``version``'s layout."""
    if version >= c.VERSION_30:
        return REPORT_DELIVER_LENGTH_30
    return REPORT_DELIVER_LENGTH_20


def report_deliver(frame: bytes, seq: int, version: int) -> Deliver | None:
    """The ``Deliver`` (with its ``report``) of a whole status-report DELIVER frame.

    Gives what ``decode(frame, version)`` gives when the frame is
    ``report_deliver_length(version)`` bytes long, Registered_Delivery is 1 and
    Msg_Length is the version's report size; None for any other frame (read it with
    ``decode``).  The header is not checked: the caller read it.
    """
    d = DECODED
    if version >= c.VERSION_30:
        if len(frame) != REPORT_DELIVER_LENGTH_30:
            return None
        (
            msg_id, dest_id, service_id, tp_pid, tp_udhi, msg_fmt, source,
            source_type, registered, length, content, link_id,
        ) = _REPORT_DELIVER_30.unpack(frame)  # fmt: skip
        if registered != 1 or length != _REPORT_30.size:
            return None
        fields = _REPORT_30.unpack(content)
        link_id = d[link_id]
    else:
        if len(frame) != REPORT_DELIVER_LENGTH_20:
            return None
        (
            msg_id, dest_id, service_id, tp_pid, tp_udhi, msg_fmt, source,
            registered, length, content,
        ) = _REPORT_DELIVER_20.unpack(frame)  # fmt: skip
        if registered != 1 or length != _REPORT_20.size:
            return None
        fields = _REPORT_20.unpack(content)
        source_type = 0
        link_id = ""

    # The terminal id is new in almost every report: decoded directly, not through
    # the memo table (a miss costs more, and would crowd out the stable values);
    # gateways put the same bytes in Src_terminal_Id and Dest_terminal_Id.
    terminal = text_from_octets(source)
    report = StatusReport(
        fields[0],
        d[fields[1]],
        d[fields[2]],
        d[fields[3]],
        terminal if fields[4] == source else text_from_octets(fields[4]),
        fields[5],
    )
    return Deliver(
        msg_id,
        d[dest_id],
        d[service_id],
        tp_pid,
        tp_udhi,
        msg_fmt,
        terminal,
        source_type,
        1,
        content,
        link_id,
        seq,
        report,
    )
