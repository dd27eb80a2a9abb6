# -*- test-case-name: tests.test_protocol,tests.test_protocol_hotpath -*-
"""The receiving half of one CMPP connection: framing, SUBMIT_RESP and DELIVER.

The hot path of a busy connection.  Frames are read in place from the received bytes
(only a partial frame at the end is kept for the next read); a SUBMIT_RESP is read
with one ``struct`` call and no PDU object, the usual status report with
``cmppsvc.codec.hotpath.report_deliver``; everything else goes through ``decode``
and, unless it is a DELIVER or a SUBMIT_RESP, to ``cmppsvc.sessionpdus``.  A
Total_Length outside 12..4096 is refused as soon as its four bytes arrive: the
stream cannot be split any more, and the connection is dropped.
"""

from __future__ import annotations

import struct

from cmppsvc.backoff import NETWORK
from cmppsvc.codec import (
    HEADER_LENGTH,
    MAX_PDU_LENGTH,
    CodecError,
    Deliver,
    SubmitResp,
    decode,
)
from cmppsvc.codec import constants as command
from cmppsvc.codec.hotpath import report_deliver
from cmppsvc.owner import CLOSED, CLOSING, READY
from cmppsvc.window import SubmitOutcome, SubmitUnknown, result_reason

FLOW_CONTROL = 8
DUPLICATE_SEQUENCE = 3

_HEADER = struct.Struct(">III")
_LENGTH = struct.Struct(">I")
_SUBMIT_RESP = {
    # Total_Length -> the frame's (Msg_Id, Result); 2.0 has a 1-byte Result, 3.0
    # (and some 2.0 gateways) a 4-byte one.  Other lengths take the codec's path.
    21: struct.Struct(">12xQB"),
    24: struct.Struct(">12xQI"),
}
_DELIVER_RESP_20 = struct.Struct(">IIIQB")
_DELIVER_RESP_30 = struct.Struct(">IIIQI")
_new_outcome = tuple.__new__
"""Builds a ``SubmitOutcome`` from a tuple of its fields: half the cost of a call."""
_SUCCESS = result_reason(0)
_REASONS = {0: _SUCCESS}


class Receiving:
    """``dataReceived`` and the answers to our submits, for ``CMPPClientProtocol``.

    The host class provides ``state``, ``clock``, ``owner``, ``outstanding``,
    ``settings``, ``log``, ``trace_pdus``, ``_heartbeat``, ``_version``, ``_out``,
    ``_reading``, ``flush``, ``_fields``, ``_fail``, ``_abort``,
    ``_skip``, ``_other_pdu`` and ``_send_terminate``.
    """

    def _init_receiving(self, version: int) -> None:
        """Set up the receiving state for a connection speaking ``version``."""
        self._partial = b""  # the start of a frame not yet complete
        self._framing_broken = False
        self._deliver_resp = (
            _DELIVER_RESP_30 if version >= command.VERSION_30 else _DELIVER_RESP_20
        )

    def dataReceived(self, data: bytes) -> None:
        """Handle every whole PDU in ``data``, then write all answers at once.

        Frames are read in place from the received bytes (only a partial frame at
        the end is kept, for the next read); SUBMIT_RESP, the hot path, and the
        usual status report are read without the general decoder.
        """
        if self._framing_broken:
            return
        now = self.clock.seconds()
        self._heartbeat.last_received = now
        if self._partial:
            data = self._partial + data
            self._partial = b""
        end = len(data)
        offset = 0
        freed = False
        answering = self.state in (READY, CLOSING)
        outstanding = self.outstanding
        self._reading = True
        try:
            while end - offset >= HEADER_LENGTH:
                length, command_id, seq = _HEADER.unpack_from(data, offset)
                if length < HEADER_LENGTH or length > MAX_PDU_LENGTH:
                    self._broken_framing(length)
                    return
                if end - offset < length:
                    break

                if command_id == command.SUBMIT_RESP and answering:
                    layout = _SUBMIT_RESP.get(length)
                    if layout is not None:
                        msg_id, result = layout.unpack_from(data, offset)
                        offset += length
                        record = outstanding.pop(seq, None) if result == 0 else None
                        if record is not None:
                            # Accepted, the usual answer: resolved right here.
                            freed = True
                            record.succeed(
                                _new_outcome(
                                    SubmitOutcome,
                                    (
                                        seq,
                                        msg_id,
                                        0,
                                        _SUCCESS,
                                        record.sent_at,
                                        now,
                                        record.attempts,
                                        record.resent,
                                    ),
                                )  # fmt: skip
                            )
                        elif self._submit_answered(seq, msg_id, result, now):
                            freed = True
                        continue

                frame = data[offset : offset + length]
                offset += length
                if command_id == command.DELIVER and answering:
                    pdu = report_deliver(frame, seq, self._version)
                    if pdu is not None:
                        if self.trace_pdus:
                            self.log.debug("received {pdu!r}", pdu=pdu)
                        self._deliver(pdu)
                        continue
                handled = self._frame_received(frame, now)
                if handled is None:
                    return
                freed = handled or freed
                answering = self.state in (READY, CLOSING)

            if end - offset >= 4:
                # Refuse a bad Total_Length as soon as it arrives, not once the
                # frame it announces is complete.
                (length,) = _LENGTH.unpack_from(data, offset)
                if length < HEADER_LENGTH or length > MAX_PDU_LENGTH:
                    self._broken_framing(length)
                    return
            if offset < end:
                self._partial = data[offset:]
        finally:
            self._reading = False

        if freed:
            if self.state == READY:
                self.owner.window_opened(self)
            elif self.state == CLOSING and not self.outstanding:
                self._send_terminate()
        self.flush()

    def _broken_framing(self, length: int) -> None:
        """A Total_Length no frame can have: the stream cannot be split any more."""
        error = f"Total_Length {length} outside {HEADER_LENGTH}..{MAX_PDU_LENGTH}"
        self.log.error(
            "broken framing, dropping channel={channel} gateway={gateway} "
            "error={error}",
            error=error,
            **self._fields(),
        )
        self._partial = b""
        self._framing_broken = True
        self._fail(NETWORK, None, f"broken framing: {error}")
        self._abort()

    def _frame_received(self, frame: bytes, now: float) -> bool | None:
        """Decode and handle one frame off the hot path: True when it freed a
        window slot, None when the connection is over (stop reading)."""
        try:
            pdu = decode(frame, self._version)
        except CodecError as error:
            if error.fatal:
                self._fail(NETWORK, None, f"undecodable PDU: {error}")
                self._abort()
                return None
            self._skip(frame, error)
            return False

        if self.trace_pdus:
            self.log.debug("received {pdu!r}", pdu=pdu)
        freed = False
        answering = self.state in (READY, CLOSING)
        if pdu.command_id == command.DELIVER and answering:
            self._deliver(pdu)
        elif pdu.command_id == command.SUBMIT_RESP and answering:
            freed = self._submit_answered(pdu.seq, pdu.msg_id, pdu.result, now)
        else:
            self._other_pdu(pdu, now)
        return None if self.state == CLOSED else freed

    def _submit_answered(self, seq: int, msg_id: int, result: int, now: float) -> bool:
        """Resolve the submit a SUBMIT_RESP answers; True when it freed a slot."""
        record = self.outstanding.pop(seq, None)
        if record is None:
            self.owner.late_response(
                seq, SubmitResp(msg_id=msg_id, result=result, seq=seq)
            )
            return False

        if result == FLOW_CONTROL:
            self.owner.flow_controlled(self, record)
        elif result == DUPLICATE_SEQUENCE:
            record.fail(
                SubmitUnknown(
                    "gateway answered duplicate message sequence (Result 3): "
                    "it may or may not hold the message",
                    seq,
                    record.attempts,
                )
            )
        else:
            record.succeed(
                _new_outcome(
                    SubmitOutcome,
                    (
                        seq,
                        msg_id,
                        result,
                        _REASONS.get(result) or result_reason(result),
                        record.sent_at,
                        now,
                        record.attempts,
                        record.resent,
                    ),
                )
            )
        return True

    def _deliver(self, pdu: Deliver) -> None:
        """Answer at once, then hand over; a failing handler must not cost the link."""
        self._out.append(
            self._deliver_resp.pack(
                self._deliver_resp.size, command.DELIVER_RESP, pdu.seq, pdu.msg_id, 0
            )
        )
        try:
            self.owner.deliver_received(pdu)
        except Exception:
            self.log.failure(
                "deliver handler failed channel={channel} seq={seq}",
                channel=self.settings.channel_id,
                seq=pdu.seq,
            )
