# -*- test-case-name: tests.test_inbound -*-
"""What the gateway delivers to one channel: status reports and MO messages.

The connection has already answered each DELIVER with a DELIVER_RESP before it
gets here. A status report is matched to its message through the Msg_Id index
(which any process of the platform may have written), checked for being a
duplicate, and written as a `report` event with its response->report latency.
An MO message is reassembled when it is one segment of a long message and
written as an `mo` event.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from cmppsvc.codec import Deliver
from cmppsvc.codec.codes import report_stat
from cmppsvc.codec.msgid import msg_id_text
from cmppsvc.codec.reassembly import MoMessage, Reassembler
from cmppsvc.latency import LatencyHistogram

log = Logger(namespace="cmppsvc.inbound")

# Incomplete long MO messages are given up after this long (two hours, as
# established clients do); what arrived is then written with `partial=1` and its
# missing segments left out.
MO_REASSEMBLY_EXPIRY = 2 * 3600.0


class InboundFlow:
    """Turns one channel's DELIVERs into report and MO events."""

    def __init__(
        self,
        channel_id: str,
        clock: IReactorTime,
        msgindex: Any,
        events: Any,
        report_latency: LatencyHistogram,
        log_each: bool,
    ) -> None:
        self._channel_id = channel_id
        self._clock = clock
        self._msgindex = msgindex
        self._events = events
        self._latency = report_latency
        self._log_each = log_each
        self._reassembler = Reassembler(timeout=MO_REASSEMBLY_EXPIRY)
        self.counters = {"reports": 0, "duplicate_reports": 0, "unmatched": 0, "mo": 0}

    def deliver_received(self, deliver: Deliver) -> None:
        """Handle one DELIVER (already answered)."""
        if deliver.registered_delivery == 1 and deliver.report is not None:
            self._report_received(deliver)
        else:
            self._mo_received(deliver)

    def _report_received(self, deliver: Deliver) -> None:
        received_at = self._clock.seconds()
        self._msgindex.report_with_callbacks(
            deliver.report.msg_id,
            self._matched,
            self._lookup_failed,
            deliver,
            received_at,
        )

    def _matched(
        self,
        matched: tuple[dict[str, Any] | None, bool],
        deliver: Deliver,
        received_at: float,
    ) -> None:
        entry, first = matched
        report = deliver.report
        if entry is None:
            self.counters["unmatched"] += 1
            log.warn(
                "report for an unknown Msg_Id channel={channel} msg_id={msg_id} "
                "stat={stat}",
                channel=self._channel_id,
                msg_id=msg_id_text(report.msg_id),
                stat=report.stat,
            )
            self._emit_report(deliver, None, "")
            return

        if not first:
            self.counters["duplicate_reports"] += 1
            log.info(
                "duplicate report ignored channel={channel} msg_id={msg_id} "
                "stat={stat}",
                channel=self._channel_id,
                msg_id=msg_id_text(report.msg_id),
                stat=report.stat,
            )
            return

        answered = float(entry.get("answered") or received_at)
        latency_ms = round(max(0.0, received_at - answered) * 1000.0, 3)
        self._latency.record(latency_ms)
        self._emit_report(deliver, entry, latency_ms)
        if self._log_each:
            text_id = msg_id_text(report.msg_id)
            log.info(
                "report matched channel={channel} msgId={msgId} stat={stat} "
                "rspReptime={rspReptime}",
                channel=self._channel_id,
                msgId=text_id,
                msg_id=text_id,
                stat=report.stat,
                rspReptime=latency_ms,
                latency_ms=latency_ms,
            )

    def _emit_report(
        self, deliver: Deliver, entry: dict[str, Any] | None, latency_ms: Any
    ) -> None:
        report = deliver.report
        self.counters["reports"] += 1
        entry = entry or {}
        stat = report.stat
        events = self._events
        # Built as the XADD's arguments directly: this runs for every report.
        events.writer.queue(
            *events.head,
            "type", "report",
            "channel", self._channel_id,
            "id", entry.get("id", ""),
            "msg_id", msg_id_text(report.msg_id),
            "stat", stat,
            "reason", str(report_stat(stat)),
            "delivered", 1 if stat == "DELIVRD" else 0,
            "to", report.dest_terminal_id,
            "latency_ms", latency_ms,
            "segment", entry.get("segment", ""),
            "segments", entry.get("segments", ""),
            "matched", 1 if entry else 0,
        )  # fmt: skip

    def _lookup_failed(
        self, failure: Failure, deliver: Deliver, _received_at: float
    ) -> None:
        # The report was already answered; without Redis it cannot be matched
        # now, so it is written unmatched rather than dropped.
        log.failure(
            "report lookup failed channel={channel} msg_id={msg_id}",
            failure,
            channel=self._channel_id,
            msg_id=msg_id_text(deliver.report.msg_id),
        )
        self._emit_report(deliver, None, "")

    def _mo_received(self, deliver: Deliver) -> None:
        now = self._clock.seconds()
        for expired in self._reassembler.expire(now):
            self._emit_mo(expired, "")

        completed = self._reassembler.add(deliver, now)
        if completed is not None:
            self._emit_mo(completed, msg_id_text(deliver.msg_id))

    def _emit_mo(self, message: MoMessage, msg_id: str) -> None:
        """Write one MO event; an expired, incomplete message has `partial=1`."""
        self.counters["mo"] += 1
        fields = {
            "type": "mo",
            "channel": self._channel_id,
            "id": msg_id,
            "msg_id": msg_id,
            "src": message.src_terminal_id,
            "dest": message.dest_id,
            "msg_fmt": message.msg_fmt,
            "link_id": message.link_id,
            "segments": message.total,
            "partial": 0 if message.complete else 1,
        }
        if isinstance(message.text, str):
            fields["text"] = message.text
        else:
            fields["content_hex"] = bytes(message.text).hex()
        self._events.emit(fields)
