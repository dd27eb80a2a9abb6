# -*- test-case-name: tests.test_codec -*-
"""The CMPP 2.0 / 3.0 codec: frames, PDUs, authentication, codes, Msg_Id and text.

Pure Python (no Twisted, no Redis).  ``encode(pdu, version)`` gives a whole frame,
``decode(frame, version)`` reads one, ``FrameBuffer`` splits a byte stream into frames.
Every failure is a ``CodecError`` whose ``fatal`` says whether the stream is broken.
"""

from __future__ import annotations

from cmppsvc.codec import fast as _fast  # noqa: F401  (installs the fast paths)
from cmppsvc.codec.codec import (
    PDU_CLASSES,
    decode,
    decode_report,
    encode,
    encode_report,
)
from cmppsvc.codec.constants import (
    HEADER_LENGTH,
    MAX_PDU_LENGTH,
    VERSION_20,
    VERSION_30,
)
from cmppsvc.codec.errors import CodecError, UnknownCommand
from cmppsvc.codec.framing import FrameBuffer
from cmppsvc.codec.hotpath import deliver_resp_frame, submit_resp_fields
from cmppsvc.codec.pdus import (
    ActiveTest,
    ActiveTestResp,
    Cancel,
    CancelResp,
    Connect,
    ConnectResp,
    Deliver,
    DeliverResp,
    Fwd,
    FwdResp,
    Query,
    QueryResp,
    StatusReport,
    Submit,
    SubmitResp,
    Terminate,
    TerminateResp,
)

__all__ = [
    "VERSION_20",
    "VERSION_30",
    "HEADER_LENGTH",
    "MAX_PDU_LENGTH",
    "PDU_CLASSES",
    "CodecError",
    "UnknownCommand",
    "FrameBuffer",
    "encode",
    "decode",
    "encode_report",
    "decode_report",
    "submit_resp_fields",
    "deliver_resp_frame",
    "Connect",
    "ConnectResp",
    "Terminate",
    "TerminateResp",
    "ActiveTest",
    "ActiveTestResp",
    "Submit",
    "SubmitResp",
    "Deliver",
    "DeliverResp",
    "StatusReport",
    "Query",
    "QueryResp",
    "Cancel",
    "CancelResp",
    "Fwd",
    "FwdResp",
]
