# -*- test-case-name: tests.test_protocol -*-
"""The heartbeat of one connection: notice a silent, half-open link.

A TCP link can die without either side hearing of it (a NAT drops its entry, a cable
is pulled): writes still succeed for a long time.  So after C seconds (the
heartbeat interval) without receiving anything, the connection sends ACTIVE_TEST;
unanswered for T it is resent with the same Sequence_Id; after N sends with nothing
at all received meanwhile, the link is declared dead.  Anything received proves the
link alive, whichever PDU it is.
"""

from __future__ import annotations

from collections.abc import Callable

from cmppsvc.codec import ActiveTest, encode

ALIVE = "alive"
DEAD = "dead"


class Heartbeat:
    """ACTIVE_TEST bookkeeping, checked by the connection's periodic sweep.

    The connection sets ``last_received`` on every read (one attribute store, no
    call) and ``check`` decides, once per sweep, what to send.
    """

    def __init__(
        self,
        interval: float,
        timeout: float,
        attempts: int,
        version: int,
        next_seq: Callable[[], int],
        now: float,
    ) -> None:
        self.interval = interval
        self.timeout = timeout
        self.attempts = attempts
        self.version = version
        self.next_seq = next_seq
        self.last_received = now
        self.seq: int | None = None
        self.sends = 0
        self._frame = b""
        self._first_sent = 0.0
        self._deadline = 0.0

    def answered(self, seq: int) -> None:
        """An ACTIVE_TEST_RESP arrived."""
        if seq == self.seq:
            self.seq = None

    def check(self, now: float, out: list[bytes]) -> str:
        """Queue an ACTIVE_TEST on ``out`` when due; return ``ALIVE`` or ``DEAD``."""
        if self.seq is None:
            if now - self.last_received >= self.interval:
                self.seq = self.next_seq()
                self._frame = encode(ActiveTest(seq=self.seq), self.version)
                self.sends = 1
                self._first_sent = now
                self._deadline = now + self.timeout
                out.append(self._frame)
            return ALIVE

        if now < self._deadline:
            return ALIVE
        if self.last_received >= self._first_sent:
            self.seq = None
            return ALIVE
        if self.sends < self.attempts:
            self.sends += 1
            self._deadline = now + self.timeout
            out.append(self._frame)
            return ALIVE
        return DEAD
