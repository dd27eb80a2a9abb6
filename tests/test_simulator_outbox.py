# test-case-name: tests.test_simulator_outbox
"""The simulator's writes: reports due ride with answers; the timer bounds the wait."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from cmppsvc.simulator.outbox import RIDE_SECONDS, Outbox


class RecordingTransport(StringTransport):
    """Keeps every write separately."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)


class OutboxTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.transport = RecordingTransport()
        self.written: list[int] = []
        self.outbox = Outbox(self.clock, self.transport, self.written.append)

    def test_idle_connection_gets_reports_on_time(self) -> None:
        self.outbox.send([b"A1"], [b"R1"], 0, 0.05)
        self.clock.advance(0.05)
        self.assertEqual(self.transport.writes, [b"A1", b"R1"])
        self.assertEqual(self.written, [1])

    def test_due_reports_ride_with_answers(self) -> None:
        self.outbox.send([b"A1"], [b"R1"], 0, 0.05)
        self.clock.advance(0.0499)
        self.outbox.send([b"A2"], [b"R2"], 0, 0.05)
        self.clock.advance(0.0001)
        # Answers flowed just now: the due report waits for the next answers.
        self.assertEqual(self.transport.writes, [b"A1", b"A2"])
        self.clock.advance(0.0002)
        self.outbox.send([b"A3"], [], 0, 0.05)
        self.assertEqual(self.transport.writes, [b"A1", b"A2", b"A3R1"])
        self.assertEqual(self.written, [1])

    def test_wait_is_bounded(self) -> None:
        self.outbox.send([b"A1"], [b"R1"], 0, 0.05)
        self.clock.advance(0.0499)
        self.outbox.send([b"A2"], [], 0, 0.05)
        self.clock.advance(0.0001)
        self.assertEqual(self.transport.writes, [b"A1", b"A2"])
        self.clock.advance(RIDE_SECONDS)
        self.assertEqual(self.transport.writes, [b"A1", b"A2", b"R1"])

    def test_reports_never_early(self) -> None:
        self.outbox.send([b"A1"], [b"R1"], 0, 0.05)
        self.clock.advance(0.04)
        self.outbox.send([b"A2"], [], 0, 0.05)
        self.assertEqual(self.transport.writes, [b"A1", b"A2"])
        self.assertEqual(self.written, [])

    def test_queue_reports_at_keeps_due_order(self) -> None:
        self.outbox.send([b"A1"], [b"R1"], 0, 0.05)
        self.outbox.queue_reports_at(0.02, [b"K1"])
        self.outbox.queue_reports_at(0.08, [b"K2"])
        self.clock.advance(0.02)
        self.assertEqual(self.transport.writes, [b"A1", b"K1"])
        self.clock.advance(0.03)
        self.assertEqual(self.transport.writes, [b"A1", b"K1", b"R1"])
        self.clock.advance(0.03)
        self.assertEqual(self.transport.writes, [b"A1", b"K1", b"R1", b"K2"])

    def test_close_returns_what_was_queued(self) -> None:
        self.outbox.send([b"A1"], [b"R1", b"R2"], 0, 0.05)
        self.assertEqual(self.outbox.close(), [(0.05, [b"R1", b"R2"])])
        self.clock.advance(1)
        self.assertEqual(self.transport.writes, [b"A1"])
