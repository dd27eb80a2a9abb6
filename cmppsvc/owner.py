# -*- test-case-name: tests.test_connector -*-
"""What one CMPP connection needs from whoever runs it, and the connection states.

``CMPPClientProtocol`` enforces the protocol's rules on one TCP session; its owner
(one connection slot of ``ChannelConnector``) decides what to send, when to
reconnect, and what to do with submits a lost connection leaves unanswered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from cmppsvc.codec import Deliver, SubmitResp
    from cmppsvc.protocol import CMPPClientProtocol
    from cmppsvc.window import PendingSubmit

CONNECTING = "connecting"
"""TCP connection under way, or waiting to retry one."""

LOGGING_IN = "logging in"
"""CONNECT sent, CONNECT_RESP awaited: nothing else may be sent."""

READY = "ready"
"""Logged in: submits flow, heartbeats run."""

CLOSING = "closing"
"""No new submits; outstanding answers awaited, TERMINATE exchanged."""

CLOSED = "closed"
"""No connection."""


class ConnectionOwner(Protocol):
    """The callbacks a ``CMPPClientProtocol`` makes to the one that runs it."""

    def next_seq(self) -> int:
        """A fresh Sequence_Id for a request of ours."""

    def connection_state_changed(
        self, protocol: CMPPClientProtocol, state: str
    ) -> None:
        """The connection entered ``state``."""

    def connection_failed(
        self, protocol: CMPPClientProtocol, kind: str, code: int | None, reason: str
    ) -> None:
        """The login was refused (``code`` is its Status) or the link failed;
        ``kind`` is a ``cmppsvc.backoff`` kind.  The connection is closing."""

    def window_opened(self, protocol: CMPPClientProtocol) -> None:
        """Window slots were freed: more submits may be sent now."""

    def flow_controlled(
        self, protocol: CMPPClientProtocol, record: PendingSubmit
    ) -> None:
        """The gateway answered Result 8 to ``record``, already out of the table."""

    def late_response(self, seq: int, response: SubmitResp) -> None:
        """A SUBMIT_RESP matching no outstanding submit (it came after a timeout)."""

    def deliver_received(self, pdu: Deliver) -> None:
        """A DELIVER, already answered with DELIVER_RESP Result 0."""

    def connection_lost(
        self, protocol: CMPPClientProtocol, outstanding: list[PendingSubmit]
    ) -> None:
        """The connection is gone; ``outstanding`` were sent and never answered."""
