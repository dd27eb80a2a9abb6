"""Object-free shortcuts for the two PDUs a busy connection handles most.

At tens of thousands of messages a second a client reads one SUBMIT_RESP and answers
one DELIVER per message; building a ``SubmitResp`` only to read two fields from it, or
a ``DeliverResp`` only to encode it, is a third of their cost.  These functions give
the same values and bytes as ``decode``/``encode`` (the tests compare them) without
the objects.  Responses are read by their length, as ``decode`` reads them: 2.0 and
3.0 differ only in the width of Result.
"""

from __future__ import annotations

import struct

from cmppsvc.codec import constants as c
from cmppsvc.codec.errors import CodecError

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
