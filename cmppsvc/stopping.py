# -*- test-case-name: tests.test_protocol -*-
"""The graceful end of one CMPP connection that we decide on.

No new submits; the outstanding ones get at most ``stop_timeout`` for their answers;
then TERMINATE, and the connection closes on TERMINATE_RESP, or is aborted after
``stop_timeout`` more (a half-open link would never finish a polite close).
``CMPPClientProtocol`` mixes this in; it keeps the state and the outstanding table.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, succeed

from cmppsvc.codec import Terminate, encode
from cmppsvc.owner import CLOSED, CLOSING, CONNECTING, LOGGING_IN, READY


class GracefulStop:
    """``stop()`` and its timers, for ``CMPPClientProtocol``.

    The host class provides ``state``, ``_set_state``, ``outstanding``, ``owner``,
    ``clock``, ``transport``, ``_out``, ``flush`` and ``_version``.
    """

    _stop_timeout: float
    _stop_call = None
    _terminate_seq: int | None = None

    def _init_stop(self, stop_timeout: float) -> None:
        self._stop_timeout = stop_timeout
        self._stop_call = None
        self._terminate_seq = None
        self._closed_waiters: list[Deferred] = []

    def stop(self) -> Deferred:
        """Close gracefully; the Deferred fires once the connection is closed."""
        if self.state == CLOSED:
            return succeed(None)

        waiter: Deferred = Deferred()
        self._closed_waiters.append(waiter)
        if self.state in (CONNECTING, LOGGING_IN):
            self._set_state(CLOSING)
            self.transport.loseConnection()
        elif self.state == READY:
            self._set_state(CLOSING)
            if self.outstanding:
                self._stop_call = self.clock.callLater(
                    self._stop_timeout, self._send_terminate
                )
            else:
                self._send_terminate()
        return waiter

    def _send_terminate(self) -> None:
        """Say goodbye; close on TERMINATE_RESP, or abort after ``stop_timeout``."""
        self._cancel_stop_call()
        if self._terminate_seq is not None:
            return

        self._terminate_seq = self.owner.next_seq()
        self._out.append(encode(Terminate(seq=self._terminate_seq), self._version))
        self.flush()
        self._stop_call = self.clock.callLater(self._stop_timeout, self._abort)

    def _abort(self) -> None:
        """Drop the link at once: for a half-open link no flush would ever finish."""
        self._stop_call = None
        self.transport.abortConnection()

    def _cancel_stop_call(self) -> None:
        if self._stop_call is not None and self._stop_call.active():
            self._stop_call.cancel()
        self._stop_call = None

    def _stopped(self) -> None:
        """The connection is closed: cancel the timers, wake whoever waits."""
        self._cancel_stop_call()
        waiters, self._closed_waiters = self._closed_waiters, []
        for waiter in waiters:
            waiter.callback(None)
