# -*- test-case-name: tests.test_simulator_outbox -*-
"""The writes of one simulator connection: answers batched per read, held back
by ``response_delay``, and status reports released by a single timer.

Reports that are due when a batch of answers is written ride in the same write, as
a gateway's TCP stream would carry them: at full speed that halves the writes (and
the peer's reads) per message.  While answers flow, the timer leaves due reports to
the next answers' write for up to ``RIDE_SECONDS``; otherwise it sends them."""

from collections import deque
from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime, ITransport

RIDE_SECONDS = 0.001
"""How long a due report may wait for a write of answers when answers were written
that recently: the most a report is ever later than its delay."""


class Outbox:
    """Writes to one transport on an injected clock; every timer it starts is
    cancelled by ``close`` (the connection ended)."""

    def __init__(
        self,
        clock: IReactorTime,
        transport: ITransport,
        reports_written: Callable[[int], None],
    ) -> None:
        self.clock = clock
        self.transport = transport
        self.reports_written = reports_written
        self.closed = False
        self._reports: deque[tuple[float, list[bytes]]] = deque()
        self._report_call: IDelayedCall | None = None
        self._answered_at = float("-inf")
        self._timers: set[IDelayedCall] = set()

    def send(
        self,
        answers: list[bytes],
        reports: list[bytes],
        response_delay: float,
        report_delay: float,
        close: bool = False,
    ) -> None:
        """Write one batch of answers in one write, then (optionally) close.

        Reports follow ``report_delay`` seconds after the answers; with no
        delay at all they ride in the answers' write.
        """
        if response_delay:
            if answers or close:
                self.later(response_delay, self.write, b"".join(answers), close)
            if reports:
                self._queue_reports(response_delay + report_delay, reports)
            return

        if reports and not report_delay:
            answers.extend(reports)
            self.reports_written(len(reports))
            reports = []
        if answers:
            self._answered_at = self._take_due(answers)
            self.transport.write(b"".join(answers))
        if reports:
            self._queue_reports(report_delay, reports)
        if close:
            self.transport.loseConnection()

    def write(self, data: bytes, close: bool = False) -> None:
        """Write now (nothing once the connection has ended), then maybe close."""
        if self.closed:
            return
        if data:
            self.transport.write(data)
        if close:
            self.transport.loseConnection()

    def later(
        self, delay: float, function: Callable[..., object], *arguments: object
    ) -> IDelayedCall:
        """callLater on the clock, cancelled by ``close``."""

        def fire() -> None:
            self._timers.discard(call)
            function(*arguments)

        call = self.clock.callLater(delay, fire)
        self._timers.add(call)
        return call

    def close(self) -> list[tuple[float, list[bytes]]]:
        """The connection ended: cancel every timer; return the reports not
        written yet, as (clock time due, frames), for the gateway to keep."""
        self.closed = True
        for call in list(self._timers):
            if call.active():
                call.cancel()
        self._timers.clear()
        queued = list(self._reports)
        self._reports.clear()
        self._report_call = None
        return queued

    def queue_reports_at(self, due: float, reports: list[bytes]) -> None:
        """Queue reports due at clock time ``due``, in due order among those
        queued (reports kept from an ended connection may be due earlier)."""
        queue = self._reports
        index = len(queue)
        while index and queue[index - 1][0] > due:
            index -= 1
        queue.insert(index, (due, reports))
        if index == 0:
            if self._report_call is not None:
                self._timers.discard(self._report_call)
                self._report_call.cancel()
            delay = max(0.0, due - self.clock.seconds())
            self._report_call = self.later(delay, self._flush_reports)

    def _queue_reports(self, delay: float, reports: list[bytes]) -> None:
        self._reports.append((self.clock.seconds() + delay, reports))
        if self._report_call is None:
            self._report_call = self.later(delay, self._flush_reports)

    def _take_due(self, out: list[bytes]) -> float:
        """Move every report due now onto ``out`` (and count them); return now."""
        now = self.clock.seconds()
        queue = self._reports
        before = len(out)
        while queue and queue[0][0] <= now:
            out.extend(queue.popleft()[1])
        if len(out) > before:
            self.reports_written(len(out) - before)
        return now

    def _flush_reports(self) -> None:
        """Write every report that is due in one write, then wait for the next."""
        self._report_call = None
        if self.closed:
            return
        queue = self._reports
        now = self.clock.seconds()
        if (
            queue
            and now - self._answered_at < RIDE_SECONDS
            and queue[0][0] > now - RIDE_SECONDS
        ):
            # Answers are flowing: the next write of answers carries the reports.
            self._report_call = self.later(RIDE_SECONDS, self._flush_reports)
            return

        due: list[bytes] = []
        now = self._take_due(due)
        if due:
            self.transport.write(b"".join(due))
        if queue:
            self._report_call = self.later(
                max(0.0, queue[0][0] - now), self._flush_reports
            )
