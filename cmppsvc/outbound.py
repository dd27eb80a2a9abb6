# -*- test-case-name: tests.test_outbound,tests.test_restart -*-
"""The MT flow of one channel: stream entries in, SUBMITs out, outcomes recorded.

An MT entry becomes one SUBMIT per destination and segment (a "part"). Before a
part is handed to the connector its record is written to the in-flight hash
and confirmed by Redis (one HSET for all the parts handed over together), so
after a crash a part without a record was certainly never sent. A recorded
part may have been sent, so a restart resolves it by the restart policy
(resend, or unknown): parts are therefore recorded and handed over only a few
at a time, as the connector sends them (about a twentieth of a second of the
channel's rate, at most four windows), not as soon as they are read; the rest
wait here unrecorded, and after a crash they are simply sent. When its answer
comes, its Msg_Id is indexed for report matching and its `submit` event is
written in one atomic item with its done mark; the last part's item also
deletes the entry's records and acknowledges the entry (XACK). The layout of
the records and why they are atomic:
``cmppsvc.inflight``; what a restart does with them: ``cmppsvc.recovery``.

Several destinations are sent as one SUBMIT each rather than as one
mass-send SUBMIT, so that every Msg_Id maps to exactly one number. How an
entry becomes its parts: ``cmppsvc.mtparts``.

Long messages: each segment has its own Sequence_Id, Msg_Id, submit event and
report; every segment's Msg_Id maps to the message (`id`, `segment`,
`segments`). Rule for the message's outcome: it is delivered when every
segment's report says DELIVRD, failed as soon as any segment is rejected,
fails or reports another stat, and unknown while a segment's outcome is
unknown and none failed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from cmppsvc.codec.longsms import MessageTooLong, split_message
from cmppsvc.codec.msgid import msg_id_text
from cmppsvc.connector import ChannelStopped, SubmitFailed, SubmitOutcome, SubmitUnknown
from cmppsvc.inflight import (
    InFlightStore,
    dump_record,
    event_command,
    is_done,
    queue_together,
)
from cmppsvc.latency import LatencyHistogram
from cmppsvc.mtmessage import InvalidMessage, is_valid_message_id, parse_mt_entry
from cmppsvc.mtparts import (
    Part,
    PendingMessage,
    build_parts,
    concatenation_reference,
)
from cmppsvc.recovery import RESEND, UNKNOWN_REASON, Recovered

log = Logger(namespace="cmppsvc.outbound")

# How many parts may wait for a window slot per connection and window place
# before the channel stops reading its MT stream: enough to keep the window
# full, few enough that a stop or crash has little to resolve.
PARTS_PER_WINDOW_SLOT = 4

# Parts recorded and handed to the connector but not written to a connection
# yet: at most this many seconds of the channel's rate (at least one part, at
# most as many as may wait for the windows). Enough to keep the windows full
# while the next parts' records are confirmed (behind the write-behind batch on
# the wire, two round trips to Redis); few enough that a crash leaves few parts
# recorded that were never sent. More are recorded once a quarter has gone out.
HANDOVER_SECONDS = 0.05


class OutboundFlow:
    """Turns one channel's MT entries into SUBMITs and their outcomes."""

    def __init__(
        self,
        config: Any,
        connector: Any,
        clock: IReactorTime,
        inflight: InFlightStore,
        msgindex: Any,
        events: Any,
        done_commands: Callable[[str], tuple[tuple, ...]],
        submit_latency: LatencyHistogram,
        log_each: bool,
        recovered: Recovered | None = None,
        room_available: Callable[[], None] | None = None,
    ) -> None:
        self._config = config
        self._connector = connector
        self._clock = clock
        self._inflight = inflight
        self._writer = inflight.writer
        self._msgindex = msgindex
        self._events = events
        self._done_commands = done_commands
        self._latency = submit_latency
        self._log_each = log_each
        self._recovered = recovered or Recovered({})
        self._room_available = room_available
        self._stopping = False
        self.pending_parts = 0
        # Parts read and not recorded yet, in order; how many are handed over.
        self._unrecorded: deque[tuple[PendingMessage, Part]] = deque()
        self._handed = 0
        self.counters = {
            "submitted": 0,
            "accepted": 0,
            "rejected": 0,
            "failed": 0,
            "resent": 0,
            "unknown": 0,
        }

    def _limit(self) -> int:
        config = self._config
        return config.window * config.connections * PARTS_PER_WINDOW_SLOT

    def capacity(self) -> int:
        """How many more MT entries the channel wants to read now."""
        if self._stopping:
            return 0
        return max(0, self._limit() - self.pending_parts)

    def _parts_finished(self, count: int) -> None:
        # The MT reader pauses while no channel has room; once half the room
        # is back, wake it rather than leave the window empty until its pause
        # ends.
        before = self.pending_parts
        self.pending_parts = before - count
        if self._room_available is not None and not self._stopping:
            half = self._limit() // 2
            if self.pending_parts <= half < before:
                self._room_available()

    def stop(self) -> None:
        """Take no more work; parts not sent yet stay for the next start."""
        self._stopping = True
        # Never recorded in this run: the next start reads their entries again.
        unrecorded, self._unrecorded = self._unrecorded, deque()
        self._parts_finished(len(unrecorded))

    def entries_arrived(self, entries: list[tuple[str, dict[str, str]]]) -> None:
        """Start sending each entry read from the MT stream: its parts wait
        here until the connector can send them soon (``_hand_over``)."""
        unrecorded = self._unrecorded
        for entry_id, fields in entries:
            work = self._start(entry_id, fields)
            if work is not None:
                pending, parts = work
                for part in parts:
                    unrecorded.append((pending, part))
        self._hand_over()

    def _handover_limit(self) -> int:
        config = self._config
        windows = config.window * config.connections * PARTS_PER_WINDOW_SLOT
        limiter = getattr(self._connector, "limiter", None)
        rate = getattr(limiter, "rate", None) or config.rate
        return max(1, min(windows, int(rate * HANDOVER_SECONDS)))

    def _hand_over(self) -> None:
        """Record the next waiting parts (one confirmed write), then hand them
        to the connector; once a quarter of those handed over have gone out."""
        unrecorded = self._unrecorded
        if not unrecorded or self._stopping:
            return
        limit = self._handover_limit()
        if self._handed > limit - max(1, limit // 4):
            return

        started: list[tuple[PendingMessage, list[Part]]] = []
        while unrecorded and self._handed < limit:
            pending, part = unrecorded.popleft()
            part.handed = True
            self._handed += 1
            if started and started[-1][0] is pending:
                started[-1][1].append(part)
            else:
                started.append((pending, [part]))
        self._send_when_recorded(started)

    def _left_connector_queue(self, part: Part) -> None:
        """The part was written to a connection, or will never be."""
        if part.handed:
            part.handed = False
            self._handed -= 1
            self._hand_over()

    def _start(
        self, entry_id: str, fields: dict[str, str]
    ) -> tuple[PendingMessage, list[Part]] | None:
        """Parse and split one entry; its parts to send (None: nothing)."""
        config = self._config
        recorded = self._recovered.take(entry_id) or {}
        try:
            message = parse_mt_entry(entry_id, fields, config.number, config.expid_len)
            segments = split_message(
                message.text,
                config.msg_fmt,
                words_len=config.words_len,
                words_max_len=config.words_max_len,
                reference=concatenation_reference(entry_id),
                udh16=config.udh16,
            )
        except (InvalidMessage, MessageTooLong, ValueError) as error:
            self._refuse(entry_id, fields, error, recorded)
            return None

        parts = build_parts(self._config, message, segments)
        pending = PendingMessage(message, len(parts))
        to_send: list[Part] = []
        to_resolve: list[tuple[Part, dict]] = []
        for part in parts:
            record = recorded.get(part.index)
            if record is None:
                to_send.append(part)
            elif is_done(record):
                pending.parts_left -= 1
            elif self._recovered.policy == RESEND:
                part.resend = True
                to_send.append(part)
            else:
                to_resolve.append((part, record))

        if pending.parts_left == 0:
            # Every part had its outcome before the restart; only the XACK
            # (with the deletion of the records) was missing.
            queue_together(self._writer, *self._completion(pending))
            return None

        self.pending_parts += pending.parts_left
        for part, record in to_resolve:
            self._resolve_unknown(pending, part, record)
        return (pending, to_send) if to_send else None

    def _record(self, pending: PendingMessage, part: Part) -> dict:
        record = {
            "id": pending.message.message_id,
            "to": part.destination,
            "segment": part.pdu.pk_number,
            "segments": part.pdu.pk_total,
            "parts": pending.parts,
        }
        if part.resend:
            record["resend"] = 1
        return record

    def _send_when_recorded(
        self, started: list[tuple[PendingMessage, list[Part]]]
    ) -> None:
        entries = []
        for pending, parts in started:
            records = {}
            for part in parts:
                part.record_text = dump_record(self._record(pending, part))
                records[part.index] = part.record_text
            entries.append((pending.message.entry_id, records))
        recording = self._inflight.intend_entries(entries)
        recording.addCallback(self._recorded, started)
        recording.addErrback(
            lambda failure: log.failure(
                "sending failed channel={channel} entries={entries}",
                failure,
                channel=self._config.channel_id,
                entries=len(entries),
            )
        )

    def _recorded(self, _written, started: list) -> None:
        for pending, parts in started:
            if self._stopping:
                # Never handed to the connector: not in flight.
                for part in parts:
                    part.handed = False
                self._handed -= len(parts)
                self._abandon(pending, [part.index for part in parts], True)
                continue
            record = {"id": pending.message.message_id}
            for part in parts:
                self._send(pending, part, record)

    def _send(self, pending: PendingMessage, part: Part, record: dict) -> None:
        entry_id = pending.message.entry_id

        def seq_assigned(seq: int) -> None:
            part.seq = seq
            self._left_connector_queue(part)
            self._inflight.sent_text(
                entry_id,
                part.index,
                f'{part.record_text[:-1]},"seq":{seq},'
                f'"submitted":{self._clock.seconds()!r}}}',
            )

        self.counters["submitted"] += 1
        if part.resend:
            self.counters["resent"] += 1
        self._connector.submit_with_callbacks(
            part.pdu,
            partial(self._answered, pending=pending, part=part, record=record),
            partial(self._failed, pending=pending, part=part, record=record),
            seq_assigned,
        )

    def _event(self, part: Part, record: dict, **fields: Any) -> dict:
        event = {
            "type": "submit",
            "channel": self._config.channel_id,
            "id": record["id"],
            "to": part.destination,
        }
        event.update(fields)
        event["segment"] = part.pdu.pk_number
        event["segments"] = part.pdu.pk_total
        if part.resend:
            event["resend"] = 1
        return event

    def _answered(
        self, outcome: SubmitOutcome, pending: PendingMessage, part: Part, record
    ) -> None:
        # The hot path: the event's XADD is built as one tuple (no dict), and
        # the Msg_Id index entry, the event and the done mark (or the
        # completion) go out as ONE write-behind item.
        sent_at, answered_at = outcome.sent_at, outcome.answered_at
        latency_ms = round((answered_at - sent_at) * 1000.0, 3)
        self._latency.record(latency_ms)
        msg_id = outcome.msg_id
        text_id = msg_id_text(msg_id)
        channel_id = self._config.channel_id
        message_id = record["id"]
        pdu = part.pdu
        segment, segments = pdu.pk_number, pdu.pk_total

        commands: list[tuple] = []
        accepted = outcome.result == 0
        if accepted:
            self.counters["accepted"] += 1
            commands += self._msgindex.put_commands(
                msg_id,
                {
                    "id": message_id,
                    "channel": channel_id,
                    "to": part.destination,
                    "segment": segment,
                    "segments": segments,
                    "submitted": sent_at,
                    "answered": answered_at,
                },
            )
        else:
            self.counters["rejected"] += 1

        event = (
            *self._events.head,
            "type", "submit",
            "channel", channel_id,
            "id", message_id,
            "to", part.destination,
            "seq", outcome.seq,
            "msg_id", text_id,
            "result", outcome.result,
            "reason", outcome.reason,
            "outcome", "ok" if accepted else "rejected",
            "latency_ms", latency_ms,
            "segment", segment,
            "segments", segments,
        )  # fmt: skip
        if part.resend or outcome.resent:
            # Sent again after a restart or a lost connection: the first copy
            # may have reached the gateway too.
            event += ("resend", 1)
        commands.append(event)
        if self._log_each:
            log.info(
                "submit answered channel={channel} seq={seq} msgId={msgId} "
                "result={result} subRsptime={subRsptime}",
                channel=channel_id,
                seq=outcome.seq,
                msgId=text_id,
                result=outcome.result,
                subRsptime=latency_ms,
                latency_ms=latency_ms,
            )
        self._finish_part(pending, part, commands)

    def _failed(
        self, error: Exception, pending: PendingMessage, part: Part, record
    ) -> None:
        self._left_connector_queue(part)
        if isinstance(error, ChannelStopped):
            # Never sent (or refused with flow control): safe to send later.
            # Its field is deleted right after: a sent record still queued
            # is useless.
            self._drop_sent(pending, part)
            self._abandon(pending, [part.index], True)
            return
        if isinstance(error, SubmitUnknown) and self._stopping:
            # In flight at the stop: the restart policy resolves it (its
            # sent record names the Sequence_Id in a recovered event).
            self._inflight.write_sent(pending.message.entry_id, part.index)
            self._abandon(pending, [part.index], False)
            return
        if not isinstance(error, SubmitFailed):
            log.error(
                "submit failed unexpectedly channel={channel} id={id} error={error}",
                channel=self._config.channel_id,
                id=record["id"],
                error=repr(error),
            )

        seq = getattr(error, "seq", None) or part.seq
        self.counters["failed"] += 1
        reason = getattr(error, "reason", None) or str(error)
        outcome = "unknown" if isinstance(error, SubmitUnknown) else "failed"
        event = self._event(
            part,
            record,
            seq=seq if seq is not None else "",
            msg_id="",
            result=-1,
            reason=reason,
            outcome=outcome,
            latency_ms="",
        )
        log.warn(
            "submit failed channel={channel} id={id} reason={reason}",
            channel=self._config.channel_id,
            id=record["id"],
            reason=reason,
        )
        self._part_done(pending, part, event)

    def _resolve_unknown(
        self, pending: PendingMessage, part: Part, record: dict
    ) -> None:
        """A part in flight before the restart, under the `unknown` policy."""
        self.counters["unknown"] += 1
        event = self._event(
            part,
            record,
            seq=record.get("seq", ""),
            msg_id="",
            result=-1,
            reason=UNKNOWN_REASON,
            outcome="unknown",
            latency_ms="",
            recovered=1,
        )
        self._part_done(pending, part, event)

    def _part_done(self, pending: PendingMessage, part: Part, event: dict) -> None:
        self._finish_part(pending, part, [event_command(self._events, event)])

    def _finish_part(
        self, pending: PendingMessage, part: Part, commands: list[tuple]
    ) -> int:
        """Queue the part's outcome ``commands`` with its done mark (or, for
        the entry's last part, the deletion of its records and the XACK) as
        one item; returns the item's serial."""
        self._parts_finished(1)
        self._drop_sent(pending, part)
        pending.parts_left -= 1
        if pending.parts_left == 0:
            commands += self._completion(pending)
        else:
            commands.append(
                self._inflight.done_command(
                    pending.message.entry_id, part.index, pending.parts
                )
            )
        return queue_together(self._writer, *commands)

    def _drop_sent(self, pending: PendingMessage, part: Part) -> None:
        """The part's field is about to be overwritten by its done mark or
        deleted, in an item queued now: a sent record not written yet need
        not be written at all. Should the process die before the later item
        is written, the field is then *intended* instead of *sent*, which
        recovery resolves the same way (in flight, restart policy); only the
        recovered event lacks the Sequence_Id."""
        self._inflight.drop_sent(pending.message.entry_id, part.index)

    def _completion(self, pending: PendingMessage) -> tuple[tuple, ...]:
        entry_id = pending.message.entry_id
        return (
            self._inflight.delete_command(entry_id, range(pending.parts)),
            *self._done_commands(entry_id),
        )

    def _abandon(self, pending: PendingMessage, indexes: list[int], unsent: bool):
        """Parts left for the next start: not sent, or sent and unanswered."""
        self._parts_finished(len(indexes))
        if unsent:
            self._inflight.forget_parts(pending.message.entry_id, indexes)

    def _refuse(
        self, entry_id: str, fields: dict[str, str], error: Exception, recorded: dict
    ) -> None:
        """Record an entry that cannot be sent, and acknowledge it."""
        message_id = fields.get("id") or ""
        if not is_valid_message_id(message_id):
            message_id = entry_id
        self.counters["failed"] += 1
        event = {
            "type": "failed",
            "channel": self._config.channel_id,
            "id": message_id,
            "reason": str(error),
        }
        log.warn(
            "message refused channel={channel} id={id} reason={reason}",
            channel=self._config.channel_id,
            id=message_id,
            reason=str(error),
        )
        commands = [event_command(self._events, event)]
        if recorded:
            commands.append(self._inflight.delete_command(entry_id, recorded))
        commands += self._done_commands(entry_id)
        queue_together(self._writer, *commands)
