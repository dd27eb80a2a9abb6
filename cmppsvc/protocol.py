# -*- test-case-name: tests.test_protocol,tests.test_protocol_hotpath -*-
"""One CMPP connection: login, the window of submits, timeouts, heartbeat and TERMINATE.

The connection moves through ``connecting`` -> ``logging in`` -> ``ready`` ->
``closing`` -> ``closed``.  It sends nothing but CONNECT before a CONNECT_RESP with
Status 0, and heartbeats only once logged in.  Its owner (the channel's connector)
decides what is sent and when; the connection enforces the protocol's rules.

Rules (login in ``cmppsvc.login``, heartbeat in ``cmppsvc.heartbeat``, reading
frames, SUBMIT_RESP and DELIVER in ``cmppsvc.receiving``, the other control PDUs and
unreadable ones in ``cmppsvc.sessionpdus``, our graceful stop in
``cmppsvc.stopping``):

- Timeouts and late answers: a submit unanswered after T is resent as the SAME bytes
  with the SAME Sequence_Id (reference 9.1), so an answer to any send resolves it.
  After N sends it fails with ``SubmitTimeout``; an answer arriving after that goes
  to the owner's ``late_response(seq, resp)`` so the Msg_Id can still be recorded.
  One periodic sweep checks all deadlines (at most W), not one timer per request.
- The gateway's ACTIVE_TEST, DELIVER and TERMINATE are answered in the same reactor
  turn whatever our window holds.  Everything produced while handling one read goes
  out in one ``write``.  SUBMIT_RESP is read in place, without a PDU object.
- Broken framing drops the connection.  Connection lost: unanswered submits go back
  to the owner (``cmppsvc.connector``); a loss nobody chose is reported to it as a
  network failure, so the channel's status shows it.
"""

from __future__ import annotations

import struct

from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Protocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from cmppsvc.backoff import NETWORK
from cmppsvc.codec import (
    VERSION_30,
    Submit,
    encode,
)
from cmppsvc.codec.codec import ENCODERS_20, ENCODERS_30
from cmppsvc.heartbeat import DEAD, Heartbeat
from cmppsvc.login import Login
from cmppsvc.nodelay import disable_nagle
from cmppsvc.owner import (
    CLOSED,
    CLOSING,
    CONNECTING,
    LOGGING_IN,
    READY,
    ConnectionOwner,
)
from cmppsvc.receiving import Receiving
from cmppsvc.sessionpdus import ControlMessages
from cmppsvc.settings import ConnectionSettings
from cmppsvc.stopping import GracefulStop
from cmppsvc.window import (
    PendingSubmit,
    expire,
)

__all__ = [
    "CLOSED",
    "CLOSING",
    "CONNECTING",
    "LOGGING_IN",
    "READY",
    "CMPPClientProtocol",
    "ConnectionOwner",
]

_SEQ = struct.Struct(">I")


class CMPPClientProtocol(Receiving, GracefulStop, ControlMessages, Protocol):
    """The SP side of one CMPP connection, driven by its ``ConnectionOwner``."""

    log = Logger()

    trace_pdus = False
    """Log every PDU at debug; off by default because a log call per PDU costs more
    than the PDU itself at full speed."""

    def __init__(
        self,
        settings: ConnectionSettings,
        clock: IReactorTime,
        owner: ConnectionOwner,
        sweep_interval: float = 1.0,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.owner = owner
        self.state = CONNECTING
        self.outstanding: dict[int, PendingSubmit] = {}
        self.connected_since: float | None = None
        self.last_error: str | None = None
        self._version = settings.version
        self._window = settings.window
        self._timeout = settings.response_timeout
        self._attempts = settings.attempts
        self._out: list[bytes] = []
        self._reading = False
        self._sweep_interval = min(sweep_interval, settings.response_timeout / 4)
        self._sweeper: LoopingCall | None = None
        self._login: Login | None = None
        self._heartbeat: Heartbeat | None = None
        self._failed = False
        self._encode_submit = (
            ENCODERS_30 if settings.version >= VERSION_30 else ENCODERS_20
        )[Submit]
        self._init_receiving(settings.version)
        self._init_stop(settings.stop_timeout)

    def _fields(self) -> dict:
        """The facts every state log line carries (never the password)."""
        return {
            "channel": self.settings.channel_id,
            "account": self.settings.account,
            "gateway": self.settings.gateway,
        }

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.owner.connection_state_changed(self, state)

    # -- sending ---------------------------------------------------------------

    def flush(self) -> None:
        """Write everything queued since the last flush in one call."""
        if self._out and not self._reading and self.transport is not None:
            out, self._out = self._out, []
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))

    def window_free(self) -> int:
        """How many more submits this connection may have unanswered right now."""
        return self._window - len(self.outstanding)

    def send_submit(self, record: PendingSubmit, now: float) -> None:
        """Give ``record`` a fresh Sequence_Id and queue its SUBMIT (see ``flush``).

        ``record.seq_assigned`` hears the seq before the bytes leave.  A CodecError
        (a field the codec refuses) propagates with nothing sent or recorded.
        """
        seq = self.owner.next_seq()
        pdu = record.pdu
        pdu.seq = seq
        frame = record.frame
        if frame:
            # A resend with a new seq: only the header's Sequence_Id changes.
            frame = frame[:8] + _SEQ.pack(seq) + frame[12:]
        else:
            frame = (
                self._encode_submit(pdu)
                if type(pdu) is Submit
                else encode(pdu, self._version)
            )
        record.seq = seq
        if record.seq_assigned is not None:
            record.seq_assigned(seq)

        record.frame = frame
        record.attempts += 1
        record.blind_sends += 1
        record.sent_at = now
        record.deadline = now + self._timeout
        self.outstanding[seq] = record
        self._out.append(frame)

    # -- connection lifetime ---------------------------------------------------

    def connectionMade(self) -> None:
        """Log in: CONNECT is the only PDU sent until a CONNECT_RESP with Status 0."""
        disable_nagle(self.transport)
        now = self.clock.seconds()
        settings = self.settings
        self._heartbeat = Heartbeat(
            settings.heartbeat_interval,
            self._timeout,
            self._attempts,
            self._version,
            self.owner.next_seq,
            now,
        )
        self._login = Login(settings, self.owner.next_seq(), now)
        self.log.info(
            "logging in channel={channel} account={account} gateway={gateway}",
            **self._fields(),
        )
        self._set_state(LOGGING_IN)
        self._out.append(self._login.frame)
        self.flush()

        self._sweeper = LoopingCall(self._sweep)
        self._sweeper.clock = self.clock
        self._sweeper.start(self._sweep_interval, now=False)

    def connectionLost(self, reason: Failure) -> None:
        """Hand the unanswered submits to the owner and wake whoever waits for us."""
        if self._sweeper is not None and self._sweeper.running:
            self._sweeper.stop()
        if not self._failed and self.state != CLOSING:
            # Nobody chose this end: it is a network failure, for the status too.
            self._fail(NETWORK, None, f"connection lost: {reason.getErrorMessage()}")
        was_ready = self.state in (READY, CLOSING) and self.connected_since is not None
        self._set_state(CLOSED)
        if was_ready:
            self.log.info(
                "disconnected channel={channel} gateway={gateway} "
                "unanswered={unanswered} reason={reason}",
                unanswered=len(self.outstanding),
                reason=reason.getErrorMessage(),
                **self._fields(),
            )

        outstanding = list(self.outstanding.values())
        self.outstanding.clear()
        self.owner.connection_lost(self, outstanding)
        self._stopped()

    def _fail(self, kind: str, code: int | None, reason: str) -> None:
        """Record why this connection is ending and tell the owner."""
        self.last_error = reason
        self._failed = True
        self.owner.connection_failed(self, kind, code, reason)

    # -- timers ----------------------------------------------------------------

    def _sweep(self) -> None:
        """The one periodic check: login deadline, submit timeouts, heartbeat."""
        now = self.clock.seconds()
        if self.state == LOGGING_IN:
            if now >= self._login.deadline:
                self.log.warn(
                    "login unanswered, dropping channel={channel} gateway={gateway}",
                    **self._fields(),
                )
                self._fail(NETWORK, None, "login unanswered")
                self._abort()
            return
        if self.state not in (READY, CLOSING):
            return

        freed = False
        if self.outstanding:
            resent, failed = expire(
                self.outstanding, now, self._timeout, self._attempts, self._out
            )
            if resent or failed:
                self.log.info(
                    "submits unanswered channel={channel} resent={resent} "
                    "failed={failed}",
                    channel=self.settings.channel_id,
                    resent=resent,
                    failed=failed,
                )
            freed = failed > 0

        if self.state == READY and self._heartbeat.check(now, self._out) == DEAD:
            self.log.warn(
                "heartbeat unanswered {sends} times, dropping channel={channel} "
                "gateway={gateway}",
                sends=self._heartbeat.sends,
                **self._fields(),
            )
            self._fail(NETWORK, None, "heartbeat unanswered: link presumed dead")
            self._abort()
            return

        self.flush()
        if freed:
            if self.state == READY:
                self.owner.window_opened(self)
            elif not self.outstanding:
                self._send_terminate()
