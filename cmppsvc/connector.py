# -*- test-case-name: tests.test_connector,tests.test_connector_fastpath -*-
"""All connections of one channel: reconnecting, pacing, and the queue of submits.

``ChannelConnector`` keeps ``settings.connections`` CMPP connections, each in its own
``twisted.application.internet.ClientService`` (one pending attempt per connection;
stopping the channel cancels it).  The delay before each attempt comes from
``cmppsvc.backoff`` by the kind of the last failure, so a gateway refusing our login
sees attempts minutes apart, a dropped link is retried within seconds.

Submits wait in one queue for a ready connection with a free window slot and a token
of the channel's shared ``TokenBucket``; resends go ahead of the queue.

Rules:

- Flow control, connection loss and late answers: see ``cmppsvc.resending``.
- Graceful stop: new submits fail with ``ChannelStopped``; queued ones too (or
  ``SubmitUnknown`` when an earlier copy was sent), and so does one answered Result 8
  meanwhile; each ready connection waits at most ``stop_timeout`` for its
  outstanding answers, sends TERMINATE and closes; submits still unanswered then
  fail with ``SubmitUnknown``.
- A cancelled submit Deferred that is still queued is dropped from the queue unsent.
- ``submit_with_callbacks`` is ``submit`` with two plain callbacks instead of a
  Deferred, for a busy channel (a Deferred chain per message costs more than the
  SUBMIT_RESP it carries); ``abort()`` closes every connection at once.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Mapping

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, fail
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from twisted.logger import Logger

from cmppsvc.codec import CodecError, Deliver, Submit, SubmitResp
from cmppsvc.owner import CLOSED, CLOSING, CONNECTING, LOGGING_IN, READY
from cmppsvc.protocol import CMPPClientProtocol
from cmppsvc.ratelimit import TokenBucket
from cmppsvc.resending import ResendRules
from cmppsvc.settings import ConnectionSettings
from cmppsvc.slot import ConnectionSlot
from cmppsvc.window import (
    ChannelStopped,
    PendingSubmit,
    SubmitFailed,
    SubmitOutcome,
    SubmitTimeout,
    SubmitUnknown,
    fail_unsent,
)

__all__ = [
    "ChannelConnector",
    "ChannelStopped",
    "SubmitFailed",
    "SubmitOutcome",
    "SubmitTimeout",
    "SubmitUnknown",
    "tcp_endpoint",
]


def tcp_endpoint(settings: ConnectionSettings) -> IStreamClientEndpoint:
    """The default endpoint: TCP to ``settings.host:settings.port`` on the reactor."""
    from twisted.internet import reactor
    from twisted.internet.endpoints import TCP4ClientEndpoint

    return TCP4ClientEndpoint(reactor, settings.host, settings.port, timeout=30)


class ChannelConnector(ResendRules, Service):
    """All connections of one channel: ClientServices with backoff, one rate limiter.

    ``next_seq`` gives Sequence_Ids (synchronously); ``deliver_received`` is called
    with every DELIVER after it was answered; ``endpoint_factory`` builds the endpoint
    of each connection (default: TCP to the gateway); ``state_changed(state, info)``
    hears every change of the channel's or a connection's state and every failure;
    ``late_response(seq, resp)`` hears SUBMIT_RESPs that came after their submit
    failed.  ``random_source`` and ``backoff_curves`` (see ``cmppsvc.backoff``) shape
    the reconnect delays; tests and benchmarks shorten them.
    """

    log = Logger()

    def __init__(
        self,
        settings: ConnectionSettings,
        clock: IReactorTime,
        next_seq: Callable[[], int],
        deliver_received: Callable[[Deliver], None],
        endpoint_factory: Callable[[ConnectionSettings], IStreamClientEndpoint]
        | None = None,
        state_changed: Callable[[str, dict], None] | None = None,
        late_response: Callable[[int, SubmitResp], None] | None = None,
        random_source: Callable[[], float] = random.random,
        backoff_curves: Mapping[str, tuple[float, float, float, float]] | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._next_seq = next_seq
        self._deliver = deliver_received
        self._endpoint_factory = endpoint_factory or tcp_endpoint
        self._on_state = state_changed
        self._on_late = late_response
        self._random = random_source
        self._curves = backoff_curves
        self.limiter = TokenBucket(settings.rate, clock)
        self._queue: deque[PendingSubmit] = deque()
        self._resends: deque[PendingSubmit] = deque()
        self._ready: list[CMPPClientProtocol] = []
        self._pumping = False
        self._pump_again = False
        self._wakeup = None
        self._stopping = False
        self._state = CLOSED
        self._last_error: dict | None = None
        self._last_flow_log = float("-inf")
        self._last_late_log = float("-inf")
        self.late_responses = 0
        self.connections = [
            ConnectionSlot(self, index) for index in range(settings.connections)
        ]

    # -- public API ------------------------------------------------------------

    def startService(self) -> None:
        """Start connecting every connection of the channel."""
        super().startService()
        self._stopping = False
        for connection in self.connections:
            connection.start(self._endpoint_factory(self.settings))
        self._state_changed(None, {})

    def submit(
        self, pdu: Submit, seq_assigned: Callable[[int], None] | None = None
    ) -> Deferred:
        """Send ``pdu`` once a connection, a rate token and a window slot allow.

        Fires with a ``SubmitOutcome`` (any Result but 3 and 8, or 8 once the
        flow-control retries are used up) or fails with a ``SubmitFailed``.
        ``seq_assigned(seq)`` is called each time the submit gets a Sequence_Id,
        before its bytes are written.  ``pdu.seq`` is overwritten.  Cancelling the
        Deferred drops a submit not yet sent.
        """
        if self._stopping or not self.running:
            return fail(ChannelStopped("channel is not running"))

        record = PendingSubmit(pdu, None, None, seq_assigned)
        deferred: Deferred = Deferred(record.cancel)
        record.answered = deferred.callback
        record.failed = deferred.errback
        self._enqueue(record)
        return deferred

    def submit_with_callbacks(
        self,
        pdu: Submit,
        answered: Callable[[SubmitOutcome], object],
        failed: Callable[[SubmitFailed], object],
        seq_assigned: Callable[[int], None] | None = None,
    ) -> PendingSubmit:
        """``submit`` without a Deferred: the fast path for a busy channel.

        Exactly one of ``answered(outcome)`` or ``failed(error)`` (a
        ``SubmitFailed`` instance, not a Failure) is called, once, with what the
        Deferred of ``submit`` would carry; ``failed`` is called before this returns
        when the channel is not running.  An exception they raise is logged, never
        passed on.  The returned handle's ``cancel()`` drops the submit if unsent
        (and then neither is called).
        """
        record = PendingSubmit(pdu, answered, failed, seq_assigned)
        if self._stopping or not self.running:
            record.fail(ChannelStopped("channel is not running"))
            return record

        self._enqueue(record)
        return record

    def _enqueue(self, record: PendingSubmit) -> None:
        queue = self._queue
        queue.append(record)
        if (len(queue) == 1 and not self._resends) or self._pumping:
            # Submits already waiting mean no slot or no token is free now; the
            # answer that frees one, or the rate timer, pumps again.
            self._pump()

    def abort(self) -> None:
        """Close every connection of the channel at once, without TERMINATE.

        For a channel that must be gone now (its lease is ending).  Reconnecting
        stops; queued submits fail as in ``stopService`` and unanswered ones with
        ``SubmitUnknown``.  Safe during or after ``stopService``, whose Deferred
        then fires once the connections are closed.
        """
        if self.running:
            Service.stopService(self)
        self._stopping = True
        if self._wakeup is not None and self._wakeup.active():
            self._wakeup.cancel()
        self._wakeup = None
        while self._resends or self._queue:
            record = self._resends.popleft() if self._resends else self._queue.popleft()
            fail_unsent(record)

        for connection in self.connections:
            connection.abort()
        self._state_changed(None, {})

    def stopService(self) -> Deferred:
        """Graceful stop: no new submits, bounded wait for answers, TERMINATE, close."""
        super().stopService()
        self._stopping = True
        if self._wakeup is not None and self._wakeup.active():
            self._wakeup.cancel()
        self._wakeup = None
        self._state_changed(None, {})

        while self._resends or self._queue:
            record = self._resends.popleft() if self._resends else self._queue.popleft()
            fail_unsent(record)

        closing = [c.stop() for c in self.connections if c.service is not None]

        def stopped(_: object) -> None:
            for connection in self.connections:
                connection.state = CLOSED
                connection.retry_at = None
            self._state_changed(None, {})

        return DeferredList(closing).addCallback(stopped)

    def status(self) -> dict:
        """The channel's state, last error, window use and pace, as flat values.

        Times are clock seconds; ``connected_since`` and the ``last_error_*`` values
        are None when there is nothing to report.
        """
        ready_since = [
            p.connected_since for p in self._ready if p.connected_since is not None
        ]
        error = self._last_error or {}
        retries = [c.retry_at for c in self.connections if c.retry_at is not None]
        return {
            "state": self._state,
            "connected_since": min(ready_since) if ready_since else None,
            "last_error": error.get("reason"),
            "last_error_kind": error.get("kind"),
            "last_error_code": error.get("code"),
            "last_error_at": error.get("at"),
            "connections_ready": len(self._ready),
            "connection_states": ",".join(c.state for c in self.connections),
            "reconnect_failures": sum(c.backoff.failures for c in self.connections),
            "next_attempt_at": min(retries) if retries else None,
            "window_in_use": sum(len(p.outstanding) for p in self._ready),
            "window": self.settings.window * len(self._ready),
            "queued": len(self._queue) + len(self._resends),
            "rate": self.limiter.rate,
            "configured_rate": self.limiter.configured_rate,
            "flow_control_episodes": self.limiter.flow_control_episodes,
            "late_responses": self.late_responses,
        }

    # -- the queue -------------------------------------------------------------

    def _pump(self) -> None:
        """Send what the windows and the bucket allow; safe against re-entry."""
        if self._pumping:
            self._pump_again = True
            return

        self._pumping = True
        try:
            self._pump_again = True
            while self._pump_again:
                self._pump_again = False
                self._pump_once()
        finally:
            self._pumping = False

    def _pump_once(self) -> None:
        resends, queue, ready = self._resends, self._queue, self._ready
        if not (resends or queue) or not ready or self._stopping:
            return

        now = self.clock.seconds()
        sent = False
        for protocol in list(ready) if len(ready) > 1 else ready:
            free = protocol.window_free()
            waiting = len(resends) + len(queue)
            if free <= 0:
                continue
            if waiting == 0:
                break

            wanted = min(free, waiting)
            granted = self.limiter.take(wanted)
            if granted < wanted:
                # The rate holds the rest back: wake at its due time rather than
                # wait for an answer that may come later.
                self._schedule_wakeup()
            if granted == 0:
                break

            unused = self._send(protocol, granted, now)
            protocol.flush()
            sent = True
            # Counted from now, when they are written; the unsent given back.
            self.limiter.settle(unused)

        if sent and len(ready) > 1:
            # Start with the next connection next time, so all share the load.
            ready.append(ready.pop(0))

    def _send(self, protocol: CMPPClientProtocol, count: int, now: float) -> int:
        """Send up to ``count`` queued submits on ``protocol``; return unused tokens."""
        resends, queue = self._resends, self._queue
        while count > 0 and (resends or queue):
            record = resends.popleft() if resends else queue.popleft()
            if record.ended:
                continue
            try:
                protocol.send_submit(record, now)
            except CodecError as error:
                record.fail(SubmitFailed(f"cannot encode the submit: {error}"))
                continue
            count -= 1
        return count

    def _schedule_wakeup(self) -> None:
        """One timer for the next token, however many submits wait for it."""
        if self._wakeup is None:
            self._wakeup = self.clock.callLater(self.limiter.delay(), self._wake)

    def _wake(self) -> None:
        self._wakeup = None
        self._pump()

    # -- events from the connections -------------------------------------------

    def _record_error(
        self, connection: ConnectionSlot, kind: str, code: int | None, reason: str
    ) -> None:
        """Keep the last failure in the channel's status and announce it."""
        self._last_error = {
            "kind": kind,
            "code": code,
            "reason": reason,
            "connection": connection.index,
            "at": self.clock.seconds(),
        }
        self._state_changed(
            connection, {"error": reason, "error_kind": kind, "error_code": code}
        )

    def _state_changed(self, connection: ConnectionSlot | None, info: dict) -> None:
        """Recompute the channel's state; tell the listener about any change."""
        before = self._state
        if self._stopping:
            alive = any(
                c.protocol is not None and c.protocol.state != CLOSED
                for c in self.connections
            )
            self._state = CLOSING if alive else CLOSED
        elif not self.running:
            self._state = CLOSED
        else:
            states = {c.state for c in self.connections}
            for state in (READY, LOGGING_IN, CONNECTING, CLOSING):
                if state in states:
                    self._state = state
                    break

        if self._state != before:
            self.log.info(
                "channel {channel} is {state}",
                channel=self.settings.channel_id,
                state=self._state,
            )
        if self._on_state is not None and (self._state != before or connection):
            details = dict(info)
            if connection is not None:
                details["connection"] = connection.index
                details["connection_state"] = connection.state
            self._on_state(self._state, details)
