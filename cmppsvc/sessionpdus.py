# -*- test-case-name: tests.test_protocol -*-
"""The PDUs of one CMPP connection besides the submit traffic.

``CMPPClientProtocol`` handles SUBMIT_RESP and DELIVER itself (the hot path) and hands
everything else here: the CONNECT_RESP that ends the login, the gateway's
ACTIVE_TEST (answered at once whatever our window holds), the answer to our own
ACTIVE_TEST, the gateway's TERMINATE (answered, then the connection closes and its
owner reconnects), the answer to our TERMINATE, and PDUs that cannot be read (logged
and skipped; a DELIVER whose header is readable is answered Result 1).
"""

from __future__ import annotations

from cmppsvc.backoff import NETWORK
from cmppsvc.codec import (
    ActiveTestResp,
    CodecError,
    DeliverResp,
    TerminateResp,
    encode,
)
from cmppsvc.codec import constants as command
from cmppsvc.login import RefusalError
from cmppsvc.owner import CLOSING, LOGGING_IN, READY

STRUCTURE_ERROR = 1


class ControlMessages:
    """Login answer, heartbeats, TERMINATE and unreadable PDUs, for
    ``CMPPClientProtocol``, which provides the state, the output list and the
    owner."""

    def _other_pdu(self, pdu: object, now: float) -> None:
        """Everything but SUBMIT_RESP and DELIVER, which are the hot path."""
        command_id = pdu.command_id
        if self.state == LOGGING_IN and command_id == command.CONNECT_RESP:
            self._login_answered(pdu, now)
        elif self.state not in (READY, CLOSING):
            # Before login we may send nothing but CONNECT, so we cannot answer.
            self.log.warn(
                "ignored {name} before login channel={channel} seq={seq}",
                name=pdu.name,
                channel=self.settings.channel_id,
                seq=pdu.seq,
            )
        elif command_id == command.ACTIVE_TEST:
            self._out.append(encode(ActiveTestResp(seq=pdu.seq), self._version))
        elif command_id == command.ACTIVE_TEST_RESP:
            self._heartbeat.answered(pdu.seq)
        elif command_id == command.TERMINATE:
            self.log.info(
                "gateway sent TERMINATE channel={channel} gateway={gateway}",
                **self._fields(),
            )
            self._out.append(encode(TerminateResp(seq=pdu.seq), self._version))
            self._set_state(CLOSING)
            self._fail(NETWORK, None, "gateway sent TERMINATE")
            self._reading = False
            self.flush()
            self.transport.loseConnection()
        elif command_id == command.TERMINATE_RESP and pdu.seq == self._terminate_seq:
            self.transport.loseConnection()
        else:
            self.log.info(
                "ignored {name} channel={channel} seq={seq}",
                name=pdu.name,
                channel=self.settings.channel_id,
                seq=pdu.seq,
            )

    def _login_answered(self, pdu: object, now: float) -> None:
        """Ready on Status 0; any other Status ends the connection."""
        try:
            self._login.judge(pdu)
        except RefusalError as refusal:
            self._fail(refusal.kind, refusal.status, str(refusal))
            self._set_state(CLOSING)
            self.transport.loseConnection()
            return

        self.connected_since = now
        self.last_error = None
        self._set_state(READY)
        self.owner.window_opened(self)

    def _skip(self, frame: bytes, error: CodecError) -> None:
        """Log a PDU that cannot be read; answer a DELIVER with Result 1."""
        self.log.warn(
            "skipped unreadable PDU channel={channel} gateway={gateway} error={error}",
            error=str(error),
            **self._fields(),
        )
        if (
            error.command_id == command.DELIVER
            and error.seq is not None
            and self.state in (READY, CLOSING)
        ):
            msg_id = int.from_bytes(frame[12:20], "big") if len(frame) >= 20 else 0
            answer = DeliverResp(msg_id=msg_id, result=STRUCTURE_ERROR, seq=error.seq)
            self._out.append(encode(answer, self._version))
