# -*- test-case-name: tests.test_connector -*-
"""One connection slot of a channel: its reconnecting service, backoff and protocol.

A channel with ``connections = 2`` has two slots.  Each slot builds the
``CMPPClientProtocol`` of every TCP session it makes, is that protocol's
``ConnectionOwner``, and passes on to the ``ChannelConnector`` whatever concerns the
channel as a whole (the queue, the rate, the status).  Its ``ClientService`` keeps
one attempt pending at a time and asks ``retry_delay`` how long to wait, which the
slot's ``ReconnectBackoff`` answers by the kind of the last failure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.application.internet import ClientService
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory

from cmppsvc.backoff import STABLE_AFTER, ReconnectBackoff
from cmppsvc.codec import SubmitResp
from cmppsvc.owner import CLOSED, CLOSING, CONNECTING, READY
from cmppsvc.protocol import CMPPClientProtocol
from cmppsvc.window import PendingSubmit

if TYPE_CHECKING:
    from cmppsvc.connector import ChannelConnector


class ConnectionSlot(Factory):
    """One connection of a channel, across reconnects; the owner of its protocols."""

    noisy = False

    def __init__(self, connector: ChannelConnector, index: int) -> None:
        self.connector = connector
        self.index = index
        self.backoff = ReconnectBackoff(connector._random, connector._curves)
        self.protocol: CMPPClientProtocol | None = None
        self.state = CLOSED
        self.retry_at: float | None = None
        self.service: ClientService | None = None
        # Called once per PDU: bound straight through, no extra call on the way.
        self.next_seq = connector._next_seq
        self.deliver_received = connector._deliver

    def start(self, endpoint: object) -> None:
        """Start connecting (and reconnecting) through ``endpoint``."""
        self.service = ClientService(
            endpoint, self, retryPolicy=self.retry_delay, clock=self.connector.clock
        )
        self.state = CONNECTING
        self.service.startService()

    def stop(self) -> Deferred:
        """Stop reconnecting; a logged-in connection first ends gracefully."""
        service = self.service
        protocol = self.protocol
        if protocol is not None and protocol.state in (READY, CLOSING):
            return protocol.stop().addCallback(lambda _: service.stopService())
        return service.stopService()

    def abort(self) -> None:
        """Stop reconnecting and drop the current connection now, without TERMINATE."""
        service = self.service
        if service is not None and service.running:
            service.stopService()
        protocol = self.protocol
        if protocol is not None and protocol.transport is not None:
            protocol.transport.abortConnection()

    def buildProtocol(self, addr: object) -> CMPPClientProtocol:
        """A fresh protocol for each TCP connection."""
        connector = self.connector
        protocol = CMPPClientProtocol(connector.settings, connector.clock, self)
        self.protocol = protocol
        return protocol

    def retry_delay(self, attempt: int) -> float:
        """``ClientService``'s retry policy: the backoff by the last failure's kind."""
        delay = self.backoff.delay(attempt)
        self.retry_at = self.connector.clock.seconds() + delay
        self.state = CONNECTING
        self.connector._state_changed(self, {"retry_in": delay})
        return delay

    # -- ConnectionOwner -------------------------------------------------------

    def connection_state_changed(
        self, protocol: CMPPClientProtocol, state: str
    ) -> None:
        """Keep the channel's list of ready connections and its state current."""
        self.state = state
        self.retry_at = None
        ready = self.connector._ready
        if state == READY:
            ready.append(protocol)
        elif protocol in ready:
            ready.remove(protocol)
        self.connector._state_changed(self, {})

    def connection_failed(
        self, protocol: CMPPClientProtocol, kind: str, code: int | None, reason: str
    ) -> None:
        """Remember the kind for the next delay; report the failure."""
        self.backoff.failed(kind)
        self.connector._record_error(self, kind, code, reason)

    def window_opened(self, protocol: CMPPClientProtocol) -> None:
        """Slots were freed: the channel sends what waits."""
        self.connector._pump()

    def flow_controlled(
        self, protocol: CMPPClientProtocol, record: PendingSubmit
    ) -> None:
        """Result 8: the channel slows down and resends."""
        self.connector._flow_controlled(record)

    def late_response(self, seq: int, response: SubmitResp) -> None:
        """A SUBMIT_RESP after its submit failed."""
        self.connector._late_response(seq, response)

    def connection_lost(
        self, protocol: CMPPClientProtocol, outstanding: list[PendingSubmit]
    ) -> None:
        """Reset the backoff after a stable login; hand back unanswered submits."""
        since = protocol.connected_since
        if since is not None and self.connector.clock.seconds() - since >= STABLE_AFTER:
            self.backoff.stable()
        if self.protocol is protocol:
            self.protocol = None
        if outstanding:
            self.connector._requeue_lost(outstanding)
