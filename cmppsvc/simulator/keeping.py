# -*- test-case-name: tests.test_simulator_undelivered -*-
"""How a simulator connection keeps its status reports for the account.

A real gateway does not lose a status report because a connection ended: what
was queued, or sent without a DELIVER_RESP, goes out again on a later
connection of the same account. ``ReportKeeping`` is that part of
``SimulatorProtocol``; the account's store is ``undelivered.UndeliveredReports``.
"""

from __future__ import annotations

import itertools

from cmppsvc.simulator.undelivered import readdress_all
from cmppsvc.simulator.wire import HEADER


class ReportKeeping:
    """Mixin of ``SimulatorProtocol``: ``unanswered_reports`` (seq -> frame)
    holds every report until its DELIVER_RESP; what is left when the
    connection ends goes to the account (``left_reports``)."""

    def resend_kept_reports(self, out: list[bytes] | None = None) -> int:
        """Send the reports the account kept from its ended connections, each
        with a fresh seq of this connection; returns how many.

        With ``out`` (a login's answers) they follow the CONNECT_RESP in its
        write; otherwise they are written as the next answers would be.
        """
        kept = self.gateway.undelivered.take(self.account)
        if not kept:
            return 0

        resent = readdress_all(kept, self.version, self._next_seq)
        # Older than any report of this connection: first in line for the cap.
        frames = {seq: frame for seq, _, frame in resent}
        self.unanswered_reports = frames | self.unanswered_reports
        self.counters.reports_resent += len(resent)
        self.log.info(
            "simulator resending {count} kept status reports account={account}",
            count=len(resent),
            account=self.account,
        )

        # Reports not due yet keep their time; the rest follow the answers.
        response_delay = self.gateway.behaviour.response_delay
        now = self.clock.seconds() + response_delay
        ready = [frame for _, due, frame in resent if due <= now]
        for _, due, frame in resent:
            if due > now:
                self.outbox.queue_reports_at(due, [frame])
        if ready and out is not None:
            out.extend(ready)
            self.counters.reports_sent += len(ready)
        elif ready:
            self.outbox.send([], ready, response_delay, 0)
        return len(resent)

    def _reports_left(
        self, queued: list[tuple[float, list[bytes]]]
    ) -> list[tuple[float, bytes]]:
        """The reports this ended connection leaves to its account, oldest
        first, each with its due time (0 for those written but unanswered)."""
        due_of = {id(frame): due for due, frames in queued for frame in frames}
        return [
            (due_of.get(id(frame), 0.0), frame)
            for frame in self.unanswered_reports.values()
        ]

    def _hold_reports_until_submits_answered(
        self, reports: list[bytes], delay: float
    ) -> None:
        """response_delay: a report exists for the account only once its
        SUBMIT_RESP is written; if the connection ends first, the submit was
        never answered and its reports are not kept."""
        unanswered = self.unanswered_reports
        held = {}
        for report in reports:
            seq = HEADER.unpack_from(report)[2]
            held[seq] = unanswered.pop(seq)
        self.outbox.later(delay, self._submits_answered, held)

    def _submits_answered(self, reports: dict[int, bytes]) -> None:
        """Their SUBMIT_RESP is written: from now on the account's to keep."""
        self.unanswered_reports.update(reports)

    def _forget_oldest_reports(self, cap: int) -> None:
        """A peer that leaves reports unanswered may not grow memory without
        bound: past ``cap`` the oldest are no longer kept for a resend."""
        unanswered = self.unanswered_reports
        excess = len(unanswered) - cap
        for seq in list(itertools.islice(unanswered, excess)):
            del unanswered[seq]
        self.counters.reports_dropped += excess
        if cap and not self._forgetting_logged:
            # Once per connection: a peer that never answers would repeat it
            # on every read.
            self._forgetting_logged = True
            self.log.warn(
                "simulator stops keeping {dropped} unanswered status reports "
                "account={account}: more than {cap} unanswered",
                dropped=excess,
                account=self.account,
                cap=cap,
            )
