# -*- test-case-name: tests.test_simulator_undelivered -*-
"""Status reports an account has not acknowledged, kept across its connections.

A real gateway does not lose a status report because the SP's connection closed:
a report still queued, or written but never answered by a DELIVER_RESP, waits for
the account's next connection (any of them) and is sent again there.  The store
is bounded per account: past the cap the oldest reports go, with a log line.
"""

from collections import deque
from collections.abc import Callable, Iterable

import attrs
from twisted.logger import Logger

from cmppsvc.codec import decode, encode
from cmppsvc.simulator.wire import SEQ_OFFSET, layout_for

KeptReport = tuple[int, float, bytes]
"""(CMPP version the frame was packed for, clock time it is due, the whole
DELIVER frame)."""


class UndeliveredReports:
    """Per account, the report DELIVER frames waiting for a connection, oldest
    first."""

    log = Logger()

    def __init__(self) -> None:
        self._kept: dict[str, deque[KeptReport]] = {}

    def keep(
        self,
        account: str,
        version: int,
        reports: Iterable[tuple[float, bytes]],
        cap: int,
    ) -> tuple[int, int]:
        """Add ``reports`` (due time, frame packed for ``version``) behind what
        ``account`` has waiting; drop the oldest beyond ``cap`` (0 keeps none).

        Returns (frames added, frames dropped).
        """
        waiting = self._kept.get(account)
        if waiting is None:
            waiting = self._kept[account] = deque()
        before = len(waiting)
        waiting.extend((version, due, frame) for due, frame in reports)
        added = len(waiting) - before

        dropped = max(0, len(waiting) - cap)
        for _ in range(dropped):
            waiting.popleft()
        if not waiting:
            del self._kept[account]
        if dropped:
            self.log.warn(
                "simulator dropped {dropped} undelivered status reports of "
                "account={account}: more than {cap} kept",
                dropped=dropped,
                account=account,
                cap=cap,
            )
        return added, dropped

    def take(self, account: str) -> list[KeptReport]:
        """Everything waiting for ``account``, oldest first; the store forgets it."""
        waiting = self._kept.pop(account, None)
        return list(waiting) if waiting else []

    def count(self, account: str) -> int:
        """How many reports wait for ``account``."""
        return len(self._kept.get(account, ()))


def readdressed(kept: KeptReport, version: int, seq: int) -> bytes:
    """A kept report as a new DELIVER of a connection speaking ``version``: the
    same report and Msg_Id under that connection's Sequence_Id ``seq``.

    Only the header's Sequence_Id changes when the layout is the same; a report
    kept from a connection of the other CMPP version is re-encoded.
    """
    kept_version, _, frame = kept
    if layout_for(kept_version) is layout_for(version):
        return frame[:SEQ_OFFSET] + seq.to_bytes(4, "big") + frame[SEQ_OFFSET + 4 :]
    deliver = decode(frame, kept_version)
    return encode(attrs.evolve(deliver, seq=seq), version)


def readdress_all(
    kept: list[KeptReport], version: int, next_seq: Callable[[], int]
) -> list[tuple[int, float, bytes]]:
    """Every kept report readdressed with a fresh seq each, in order:
    (seq, due, frame)."""
    frames = []
    for report in kept:
        seq = next_seq()
        frames.append((seq, report[1], readdressed(report, version, seq)))
    return frames
