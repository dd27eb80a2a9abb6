"""The writes of one simulator connection: answers batched per read, held back
by ``response_delay``, and status reports released by a single timer."""

from collections import deque
from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime, ITransport


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

    def close(self) -> None:
        """The connection ended: cancel every timer, drop pending reports."""
        self.closed = True
        for call in list(self._timers):
            if call.active():
                call.cancel()
        self._timers.clear()
        self._reports.clear()
        self._report_call = None

    def _queue_reports(self, delay: float, reports: list[bytes]) -> None:
        self._reports.append((self.clock.seconds() + delay, reports))
        if self._report_call is None:
            self._report_call = self.later(delay, self._flush_reports)

    def _flush_reports(self) -> None:
        """Write every report that is due in one write, then wait for the next."""
        self._report_call = None
        if self.closed:
            return
        now = self.clock.seconds()
        queue = self._reports
        due: list[bytes] = []
        while queue and queue[0][0] <= now:
            due.extend(queue.popleft()[1])
        if due:
            self.transport.write(b"".join(due))
            self.reports_written(len(due))
        if queue:
            self._report_call = self.later(
                max(0.0, queue[0][0] - now), self._flush_reports
            )
