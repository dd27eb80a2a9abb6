"""The MT flow of one channel: stream entries in, SUBMITs out, outcomes recorded.

An MT entry becomes one SUBMIT per destination and segment (a "part"). Each
part is recorded as in flight under its Sequence_Id before its bytes are
written, and when its answer comes the in-flight record is removed, its Msg_Id
is indexed for report matching, and a `submit` event is written. The entry is
acknowledged on the stream only after every part has an outcome; the shared
write-behind queue writes those outcomes before the acknowledgement.

Several destinations are sent as one SUBMIT each rather than as one
mass-send SUBMIT, so that every Msg_Id maps to exactly one number.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from itertools import count
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from cmppsvc.codec import Submit
from cmppsvc.codec.longsms import MessageTooLong, split_message
from cmppsvc.codec.msgid import msg_id_text
from cmppsvc.connector import SubmitFailed, SubmitOutcome
from cmppsvc.latency import LatencyHistogram
from cmppsvc.mtmessage import InvalidMessage, MTMessage, parse_mt_entry

log = Logger(namespace="cmppsvc.outbound")

# How many parts may wait for a window slot per connection and window place
# before the channel stops reading its MT stream: enough to keep the window
# full, few enough that a stop or crash has little to resolve.
PARTS_PER_WINDOW_SLOT = 4


class _PendingMessage:
    """An MT entry whose parts are not all answered yet."""

    __slots__ = ("message", "parts_left", "acked")

    def __init__(self, message: MTMessage, parts: int) -> None:
        self.message = message
        self.parts_left = parts
        self.acked = False


class OutboundFlow:
    """Turns one channel's MT entries into SUBMITs and their outcomes."""

    def __init__(
        self,
        config: Any,
        connector: Any,
        clock: IReactorTime,
        inflight: Any,
        msgindex: Any,
        events: Any,
        acknowledge: Callable[[str], None],
        submit_latency: LatencyHistogram,
        log_each: bool,
    ) -> None:
        self._config = config
        self._connector = connector
        self._clock = clock
        self._inflight = inflight
        self._msgindex = msgindex
        self._events = events
        self._acknowledge = acknowledge
        self._latency = submit_latency
        self._log_each = log_each
        # A random start keeps references apart from those sent before a restart.
        self._references = count(random.randrange(0x10000))
        self.pending_parts = 0
        self.counters = {"submitted": 0, "accepted": 0, "rejected": 0, "failed": 0}

    def capacity(self) -> int:
        """How many more MT entries the channel wants to read now."""
        limit = self._config.window * self._config.connections * PARTS_PER_WINDOW_SLOT
        return max(0, limit - self.pending_parts)

    def entries_arrived(self, entries: list[tuple[str, dict[str, str]]]) -> None:
        """Start sending each entry read from the MT stream."""
        for entry_id, fields in entries:
            self._start(entry_id, fields)

    def _start(self, entry_id: str, fields: dict[str, str]) -> None:
        config = self._config
        try:
            message = parse_mt_entry(entry_id, fields, config.number, config.expid_len)
            segments = split_message(
                message.text,
                config.msg_fmt,
                words_len=config.words_len,
                words_max_len=config.words_max_len,
                reference=next(self._references) & 0xFFFF,
                udh16=config.udh16,
            )
        except (InvalidMessage, MessageTooLong, ValueError) as error:
            self._refuse(entry_id, fields, error)
            return

        pending = _PendingMessage(message, len(message.destinations) * len(segments))
        self.pending_parts += pending.parts_left
        source = config.number + message.extension
        for destination in message.destinations:
            for segment in segments:
                pdu = Submit(
                    pk_total=segment.pk_total,
                    pk_number=segment.pk_number,
                    registered_delivery=1 if config.reports_wanted else 0,
                    msg_level=config.msg_level,
                    service_id=config.service_id,
                    fee_user_type=config.fee_user_type,
                    tp_udhi=segment.tp_udhi,
                    msg_fmt=segment.msg_fmt,
                    msg_src=config.corp_id,
                    fee_type=config.fee_type,
                    fee_code=config.fee_code,
                    src_id=source,
                    dest_terminal_ids=(destination,),
                    msg_content=segment.content,
                )
                self._send(pending, pdu, destination)

    def _send(self, pending: _PendingMessage, pdu: Submit, destination: str) -> None:
        message = pending.message
        record = {
            "id": message.message_id,
            "entry": message.entry_id,
            "to": destination,
            "segment": pdu.pk_number,
            "segments": pdu.pk_total,
        }

        def seq_assigned(seq: int) -> None:
            record["submitted"] = self._clock.seconds()
            self._inflight.add(seq, record)

        self.counters["submitted"] += 1
        sending = self._connector.submit(pdu, seq_assigned)
        sending.addCallbacks(
            self._answered,
            self._failed,
            callbackArgs=(pending, record),
            errbackArgs=(pending, record),
        )

    def _answered(
        self, outcome: SubmitOutcome, pending: _PendingMessage, record: dict
    ) -> None:
        self._inflight.remove(outcome.seq)
        latency_ms = round((outcome.answered_at - outcome.sent_at) * 1000.0, 3)
        self._latency.record(latency_ms)
        text_id = msg_id_text(outcome.msg_id)

        if outcome.result == 0:
            self.counters["accepted"] += 1
            self._msgindex.put(
                outcome.msg_id,
                {
                    "id": record["id"],
                    "channel": self._config.channel_id,
                    "to": record["to"],
                    "segment": record["segment"],
                    "segments": record["segments"],
                    "submitted": record["submitted"],
                    "answered": outcome.answered_at,
                },
            )
        else:
            self.counters["rejected"] += 1

        self._events.emit(
            {
                "type": "submit",
                "channel": self._config.channel_id,
                "id": record["id"],
                "to": record["to"],
                "seq": outcome.seq,
                "msg_id": text_id,
                "result": outcome.result,
                "reason": outcome.reason,
                "outcome": "ok" if outcome.result == 0 else "rejected",
                "latency_ms": latency_ms,
                "segment": record["segment"],
                "segments": record["segments"],
            }
        )
        if self._log_each:
            log.info(
                "submit answered channel={channel} seq={seq} msgId={msgId} "
                "result={result} subRsptime={subRsptime}",
                channel=self._config.channel_id,
                seq=outcome.seq,
                msgId=text_id,
                result=outcome.result,
                subRsptime=latency_ms,
                latency_ms=latency_ms,
            )
        self._part_done(pending)

    def _failed(self, failure: Failure, pending: _PendingMessage, record: dict) -> None:
        error = failure.value
        if not isinstance(error, SubmitFailed):
            log.failure(
                "submit failed unexpectedly channel={channel} id={id}",
                failure,
                channel=self._config.channel_id,
                id=record["id"],
            )
        seq = getattr(error, "seq", None)
        if seq is not None:
            self._inflight.remove(seq)

        self.counters["failed"] += 1
        reason = getattr(error, "reason", None) or failure.getErrorMessage()
        self._events.emit(
            {
                "type": "submit",
                "channel": self._config.channel_id,
                "id": record["id"],
                "to": record["to"],
                "seq": seq if seq is not None else "",
                "msg_id": "",
                "result": -1,
                "reason": reason,
                "outcome": getattr(error, "outcome", "failed"),
                "latency_ms": "",
                "segment": record["segment"],
                "segments": record["segments"],
            }
        )
        log.warn(
            "submit failed channel={channel} id={id} reason={reason}",
            channel=self._config.channel_id,
            id=record["id"],
            reason=reason,
        )
        self._part_done(pending)

    def _part_done(self, pending: _PendingMessage) -> None:
        self.pending_parts -= 1
        pending.parts_left -= 1
        if pending.parts_left == 0 and not pending.acked:
            pending.acked = True
            self._acknowledge(pending.message.entry_id)

    def _refuse(self, entry_id: str, fields: dict[str, str], error: Exception) -> None:
        """Record an entry that cannot be sent, and acknowledge it."""
        message_id = str(fields.get("id") or entry_id)[:128]
        self.counters["failed"] += 1
        self._events.emit(
            {
                "type": "failed",
                "channel": self._config.channel_id,
                "id": message_id,
                "reason": str(error),
            }
        )
        log.warn(
            "message refused channel={channel} id={id} reason={reason}",
            channel=self._config.channel_id,
            id=message_id,
            reason=str(error),
        )
        self._acknowledge(entry_id)
