# -*- test-case-name: tests.test_codec,tests.test_codec_properties -*-
"""encode() and decode(): whole frames to and from PDU objects, for a given version.

Dispatch is one dict lookup by PDU class (encode) or by Command_Id (decode) in the
table of the version.  Every entry starts as the layout interpreter of ``schema.py``;
``fast.py`` replaces the hot ones (SUBMIT, DELIVER and their responses) with flattened
versions that fall back to the interpreter for anything unusual or wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from cmppsvc.codec import constants as c
from cmppsvc.codec import pdus
from cmppsvc.codec.errors import CodecError, UnknownCommand
from cmppsvc.codec.layouts import (
    LAYOUTS_20,
    LAYOUTS_30,
    RESPONSES_BY_LENGTH,
    fixed_length,
    report_layout,
)
from cmppsvc.codec.schema import HEADER, decode_body, encode_body, frame

PDU_CLASSES = (
    pdus.Connect,
    pdus.ConnectResp,
    pdus.Terminate,
    pdus.TerminateResp,
    pdus.Submit,
    pdus.SubmitResp,
    pdus.Deliver,
    pdus.DeliverResp,
    pdus.Query,
    pdus.QueryResp,
    pdus.Cancel,
    pdus.CancelResp,
    pdus.ActiveTest,
    pdus.ActiveTestResp,
    pdus.Fwd,
    pdus.FwdResp,
)
"""Every PDU class the codec knows."""

CLASS_BY_COMMAND = {cls.command_id: cls for cls in PDU_CLASSES}

_REPORT_20 = report_layout(False)
_REPORT_30 = report_layout(True)
REPORT_LENGTH_20 = fixed_length(_REPORT_20)
REPORT_LENGTH_30 = fixed_length(_REPORT_30)

Encoder = Callable[[Any], bytes]
Decoder = Callable[[Any, int], Any]


def encode_report(report: pdus.StatusReport, version: int) -> bytes:
    """A status report as DELIVER Msg_Content: 60 bytes (2.0) or 71 bytes (3.0)."""
    layout = _REPORT_30 if c.is_version_30(version) else _REPORT_20
    named = _NamedReport(report)
    return encode_body(named, layout)


class _NamedReport:
    """Lets the interpreter name a report's fields in its errors."""

    name = "DELIVER.report"

    def __init__(self, report: pdus.StatusReport) -> None:
        self._report = report

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._report, attribute)


def decode_report(
    content: bytes, seq: int | None = None, command_id: int = c.DELIVER
) -> pdus.StatusReport:
    """The status report in a DELIVER's Msg_Content, laid out by its length.

    60 to 70 bytes: the 2.0 layout (21-byte Dest_terminal_Id), as some 3.0 gateways
    send it; 71 or more: the 3.0 layout (32 bytes).  Bytes beyond the layout are
    ignored; fewer than 60 raise a non-fatal CodecError.
    """
    size = len(content)
    if size < REPORT_LENGTH_20:
        raise CodecError(
            f"DELIVER status report too short: Msg_Length {size}, needs "
            f"{REPORT_LENGTH_20} (2.0) or {REPORT_LENGTH_30} (3.0)",
            seq=seq,
            command_id=command_id,
        )
    layout = _REPORT_30 if size >= REPORT_LENGTH_30 else _REPORT_20
    values = decode_body(content, 0, layout, "DELIVER.report", seq or 0, command_id)
    return pdus.StatusReport(**values)


def _generic_encoder(cls: type, layout: tuple) -> Encoder:
    command_id = cls.command_id

    def encoder(pdu: Any) -> bytes:
        return frame(command_id, pdu.seq, encode_body(pdu, layout), cls.name)

    return encoder


def _deliver_encoder(version: int, layout: tuple) -> Encoder:
    def encoder(pdu: pdus.Deliver) -> bytes:
        if pdu.report is not None and not pdu.msg_content:
            pdu = attrs.evolve(pdu, msg_content=encode_report(pdu.report, version))
        body = encode_body(pdu, layout)
        return frame(c.DELIVER, pdu.seq, body, "DELIVER")

    return encoder


def _generic_decoder(cls: type, layout: tuple) -> Decoder:
    def decoder(data: Any, seq: int) -> Any:
        values = decode_body(
            data, c.HEADER_LENGTH, layout, cls.name, seq, cls.command_id
        )
        return cls(**values, seq=seq)

    return decoder


def _by_length_decoder(cls: type) -> Decoder:
    """A response read by its actual body length, whatever version was negotiated."""
    short_layout = LAYOUTS_20[cls.command_id]
    long_layout = LAYOUTS_30[cls.command_id]
    by_length = {fixed_length(short_layout): short_layout}
    by_length[fixed_length(long_layout)] = long_layout

    def decoder(data: Any, seq: int) -> Any:
        body = len(data) - c.HEADER_LENGTH
        layout = by_length.get(body)
        if layout is None:
            lengths = " or ".join(str(length) for length in sorted(by_length))
            raise CodecError(
                f"{cls.name} body is {body} bytes, expected {lengths}",
                seq=seq,
                command_id=cls.command_id,
            )
        values = decode_body(
            data, c.HEADER_LENGTH, layout, cls.name, seq, cls.command_id
        )
        return cls(**values, seq=seq)

    return decoder


def _deliver_decoder(layout: tuple) -> Decoder:
    def decoder(data: Any, seq: int) -> pdus.Deliver:
        values = decode_body(data, c.HEADER_LENGTH, layout, "DELIVER", seq, c.DELIVER)
        pdu = pdus.Deliver(**values, seq=seq)
        if pdu.registered_delivery == 1:
            pdu.report = decode_report(pdu.msg_content, seq)
        return pdu

    return decoder


def _active_test_resp(data: Any, seq: int) -> pdus.ActiveTestResp:
    # Some peers leave out the Reserved byte; a missing one is read as 0.
    reserved = data[c.HEADER_LENGTH] if len(data) > c.HEADER_LENGTH else 0
    return pdus.ActiveTestResp(seq=seq, reserved=reserved)


def _tables(version: int) -> tuple[dict[type, Encoder], dict[int, Decoder]]:
    layouts = LAYOUTS_30 if c.is_version_30(version) else LAYOUTS_20
    encoders: dict[type, Encoder] = {}
    decoders: dict[int, Decoder] = {}
    for cls in PDU_CLASSES:
        layout = layouts[cls.command_id]
        encoders[cls] = _generic_encoder(cls, layout)
        if cls.command_id in RESPONSES_BY_LENGTH:
            decoders[cls.command_id] = _by_length_decoder(cls)
        else:
            decoders[cls.command_id] = _generic_decoder(cls, layout)
    encoders[pdus.Deliver] = _deliver_encoder(version, layouts[c.DELIVER])
    decoders[c.DELIVER] = _deliver_decoder(layouts[c.DELIVER])
    decoders[c.ACTIVE_TEST_RESP] = _active_test_resp
    return encoders, decoders


ENCODERS_20, DECODERS_20 = _tables(c.VERSION_20)
ENCODERS_30, DECODERS_30 = _tables(c.VERSION_30)
SLOW_ENCODERS_20, SLOW_DECODERS_20 = dict(ENCODERS_20), dict(DECODERS_20)
SLOW_ENCODERS_30, SLOW_DECODERS_30 = dict(ENCODERS_30), dict(DECODERS_30)
"""The interpreter-only tables, kept for the fast paths' fallbacks and for tests."""


def encode(pdu: Any, version: int) -> bytes:
    """The whole frame (header included) of ``pdu`` in ``version``'s layout.

    Raises a non-fatal CodecError naming the PDU and field when a value does not fit.
    """
    encoders = ENCODERS_30 if version >= c.VERSION_30 else ENCODERS_20
    encoder = encoders.get(type(pdu))
    if encoder is None:
        raise CodecError(f"not a CMPP PDU: {type(pdu).__name__}")
    return encoder(pdu)


def decode(data: bytes, version: int) -> Any:
    """The PDU in one whole frame (as FrameBuffer yields it), read in ``version``'s
    layout; responses and status reports are read by their actual length.

    Raises UnknownCommand (non-fatal) for a Command_Id it does not know, a non-fatal
    CodecError for a bad body, and a fatal one when the frame is not one whole PDU.
    """
    size = len(data)
    if size < c.HEADER_LENGTH:
        raise CodecError(
            f"frame of {size} bytes is shorter than the {c.HEADER_LENGTH}-byte header",
            fatal=True,
        )
    length, command_id, seq = HEADER.unpack_from(data)
    if length != size:
        raise CodecError(
            f"Total_Length {length} does not match the frame's {size} bytes",
            fatal=True,
            seq=seq,
            command_id=command_id,
        )
    decoders = DECODERS_30 if version >= c.VERSION_30 else DECODERS_20
    decoder = decoders.get(command_id)
    if decoder is None:
        raise UnknownCommand(command_id, seq, length)
    return decoder(data, seq)
