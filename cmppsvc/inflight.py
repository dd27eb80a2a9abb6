# -*- test-case-name: tests.test_inflight -*-
"""The progress of a channel's MT entries, kept in Redis so a crash loses nothing.

Hash ``cmppsvc:inflight:<channel>``, one field per part of an MT entry that is
being worked on: ``<entry id>/<part>`` (a part is one SUBMIT: destination index
times segments plus segment index, from 0). A field goes through three states:

1. *intended*: ``{"id", "to", "segment", "segments", "parts"}``, written and
   confirmed by Redis **before** the part is handed to the connector, so a
   part without a field was certainly never sent;
2. *sent*: the same plus ``"seq"`` and ``"submitted"`` (clock seconds), written
   behind each time the connector gives the part a Sequence_Id, for a part
   still unanswered ``SENT_DELAY`` seconds later (a newer Sequence_Id
   replaces a record not written yet). It is informative only: recovery
   treats an intended and a sent record alike (in flight, restart policy);
   the Sequence_Id only goes into a recovered ``unknown`` event. So when the
   part's outcome comes before its sent record is written (the usual case),
   the record is dropped (``drop_sent``) instead of written, just before the
   outcome item is queued. Order is safe: a sent record is queued either
   before that item (then ahead of it in the one ordered queue, or dropped
   from it while not yet taken) or never, so it can never overwrite a done
   mark or re-create a deleted field; a crash before the outcome item is
   written leaves the field intended, which a restart resolves the same way;
3. *done*: ``{"done": 1, "parts": N}``, written in ONE write-behind item with
   the part's outcome event, so a done mark exists exactly when the event does.

When the last part of an entry has its outcome, its event, the deletion of
all the entry's fields and the entry's XACK go out as one item: Redis applies
them together or not at all. After a restart or a crash, ``load()`` tells per
entry which parts finished (skip them), which were intended or sent (in
flight: resolved by the channel's restart policy, see ``cmppsvc.recovery``) and,
by their absence, which were never sent (send them normally).

Why items must be atomic: a batch of the write-behind queue is one Redis EVAL,
applied whole; ``queue_together`` puts several commands into one queue item so
no batch boundary falls between them.
"""

from __future__ import annotations

import json
from collections import deque

from twisted.internet import defer
from twisted.logger import Logger

from cmppsvc import keys
from cmppsvc.redisconn import reply_text
from cmppsvc.writebehind import WriteBehind

#: Longest record accepted back from Redis (characters of JSON).
MAX_RECORD_LENGTH = 64 * 1024

#: Most fields read back from one channel's hash after a restart. The hash holds
#: a few window's worth of parts; far more means damage, not work to resume.
MAX_FIELDS = 1_000_000

#: Seconds a sent record waits before it is queued for writing. Most parts
#: are answered sooner; their sent record is then never written (see the
#: module docstring). Only a crash within this time after a send leaves the
#: field *intended* rather than *sent*: still in flight for recovery, its
#: recovered event just lacks the Sequence_Id.
SENT_DELAY = 1.0

#: Value of a done mark (the ``parts`` count is added).
DONE = "done"

# One encoder for every record: json.dumps with options builds a new one per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def queue_together(writer: WriteBehind, *commands: tuple) -> int:
    """Queue ``commands`` as one write-behind item, so they are written in the
    same batch (one EVAL: all or nothing); returns the item's serial."""
    return writer.queue_together(*commands)


def event_command(events, fields: dict) -> tuple:
    """The XADD of one event (``events`` is the ``EventWriter``), for queueing
    together with the in-flight writes it goes with."""
    return events.command(fields)


def when_written(writer: WriteBehind, serial: int) -> defer.Deferred:
    """Fires once ``writer`` has written the command (or item) ``serial``."""
    return writer.when_written(serial)


def part_field(entry_id: str, part: int) -> str:
    """The hash field of one part of an MT entry."""
    return f"{entry_id}/{part}"


def is_done(record: dict) -> bool:
    """True for a done mark (the part has its outcome event)."""
    return record.get(DONE) == 1


class InFlightStore:
    """Hash ``cmppsvc:inflight:<channel>``: ``<entry>/<part>`` -> JSON record."""

    log = Logger()

    def __init__(
        self,
        writer: WriteBehind,
        redis,
        channel_id: str,
        sent_delay: float = SENT_DELAY,
    ):
        self.writer = writer
        self.redis = redis
        self.channel_id = channel_id
        self.key = keys.inflight(channel_id)
        # Sent records not written yet: field -> JSON text while waiting for
        # sent_delay, or the write-behind serial once queued. Without a clock
        # (or a delay) they are queued at once and only ``cancel`` can drop
        # them.
        clock = getattr(writer, "clock", None)
        self._clock = clock if sent_delay > 0 else None
        self._sent_delay = sent_delay
        self._sent: dict[str, str | int] = {}
        self._sent_order: deque[tuple[float, str, str]] = deque()
        self._sent_timer = None
        if self._clock is not None and hasattr(writer, "add_on_close"):
            writer.add_on_close(self._cancel_sent_timer)

    def intend(self, entry_id: str, records: dict[int, dict]) -> defer.Deferred:
        """Record parts about to be sent (one HSET); fires once Redis has them."""
        return self.intend_entries([(entry_id, records)])

    def intend_entries(
        self, entries: list[tuple[str, dict[int, dict]]]
    ) -> defer.Deferred:
        """Record the parts of several entries about to be sent, in ONE HSET
        (one confirmed write for every entry of a read); fires once Redis has
        them. A record is a dict or its JSON text (``dump_record``)."""
        arguments: list = ["HSET", self.key]
        for entry_id, records in entries:
            for part, record in records.items():
                arguments.append(f"{entry_id}/{part}")
                arguments.append(record if record.__class__ is str else _dump(record))
        return self.writer.when_written(self.writer.queue(*arguments))

    def sent(self, entry_id: str, part: int, record: dict) -> None:
        """Record the part's latest Sequence_Id and send time (written behind,
        after ``sent_delay``: see ``sent_text``)."""
        self.sent_text(entry_id, part, _dump(record))

    def sent_text(self, entry_id: str, part: int, record_text: str) -> None:
        """Like ``sent`` with the record already as JSON text (the hot path
        appends the Sequence_Id and time to the intended record's text).

        The write waits ``sent_delay`` seconds in this store, then goes to
        the write-behind queue; ``drop_sent`` before then (the part's answer
        came) means it is never written. A newer record of the same part
        replaces a waiting one."""
        field = f"{entry_id}/{part}"
        waiting = self._sent.get(field)
        if waiting.__class__ is int:
            self.writer.cancel(waiting)
        if self._clock is None:
            self._sent[field] = self.writer.queue("HSET", self.key, field, record_text)
            return
        self._sent[field] = record_text
        self._sent_order.append(
            (self._clock.seconds() + self._sent_delay, field, record_text)
        )
        if self._sent_timer is None:
            self._sent_timer = self._clock.callLater(
                self._sent_delay, self._write_due_sent
            )

    def drop_sent(self, entry_id: str, part: int) -> None:
        """Forget the part's sent record if it is not written yet (still
        waiting here, or queued and not taken into a batch). Call it only
        just before queueing what supersedes it in the same ordered queue
        (the done mark or the deletion of the field): the field then stays
        *intended* until that later item is written, which recovery treats
        exactly like *sent* (in flight, resolved by the policy)."""
        waiting = self._sent.pop(f"{entry_id}/{part}", None)
        if waiting.__class__ is int:
            self.writer.cancel(waiting)

    def write_sent(self, entry_id: str, part: int) -> None:
        """Queue the part's waiting sent record now (it stays in flight past
        a stop: the next start's recovered event then names its
        Sequence_Id)."""
        field = f"{entry_id}/{part}"
        waiting = self._sent.pop(field, None)
        if waiting.__class__ is str:
            self.writer.queue("HSET", self.key, field, waiting)

    def write_all_sent(self) -> None:
        """Queue every waiting sent record now and stop the timer."""
        self._cancel_sent_timer()
        self._sent_order.clear()
        sent, self._sent = self._sent, {}
        for field, waiting in sent.items():
            if waiting.__class__ is str:
                self.writer.queue("HSET", self.key, field, waiting)

    def _write_due_sent(self) -> None:
        self._sent_timer = None
        now = self._clock.seconds()
        order = self._sent_order
        sent = self._sent
        while order and order[0][0] <= now:
            _due, field, text = order.popleft()
            if sent.get(field) is text:
                sent[field] = self.writer.queue("HSET", self.key, field, text)
        if order:
            self._sent_timer = self._clock.callLater(
                max(0.0, order[0][0] - now), self._write_due_sent
            )

    def _cancel_sent_timer(self) -> None:
        timer, self._sent_timer = self._sent_timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def done_command(self, entry_id: str, part: int, parts: int) -> tuple:
        """The command marking a part done; queue it together with its event."""
        mark = _dump({DONE: 1, "parts": parts})
        return ("HSET", self.key, part_field(entry_id, part), mark)

    def delete_command(self, entry_id: str, parts) -> tuple:
        """The command deleting the fields of ``parts`` of an entry."""
        return ("HDEL", self.key, *(part_field(entry_id, part) for part in parts))

    def forget_parts(self, entry_id: str, parts) -> None:
        """Delete the fields of parts that will not be sent now (written behind)."""
        parts = list(parts)
        if parts:
            self.writer.queue(*self.delete_command(entry_id, parts))

    @defer.inlineCallbacks
    def load(self):
        """Fires with {entry id: {part: record}} of everything in the hash.

        Waits for the write-behind queue first, so it sees this process's own
        writes. Fields and values that are not valid are logged and skipped.
        """
        self.write_all_sent()
        yield self.writer.flush()
        length = yield self.redis.execute_command("HLEN", self.key)
        if int(length or 0) > MAX_FIELDS:
            raise ValueError(
                f"in-flight hash {self.key} has {length} fields, more than "
                f"{MAX_FIELDS}: refusing to load it"
            )
        reply = yield self.redis.execute_command("HGETALL", self.key)
        items = reply.items() if isinstance(reply, dict) else _pairs(reply or [])

        entries: dict[str, dict[int, dict]] = {}
        for field, value in items:
            try:
                entry_id, part = _parse_field(field)
                entries.setdefault(entry_id, {})[part] = _parse_record(value)
            except ValueError as error:
                self.log.warn(
                    "skipping a bad in-flight record channel={channel} "
                    "field={field!r}: {error}",
                    channel=self.channel_id,
                    field=reply_text(field)[:80],
                    error=error,
                )
        return entries

    def clear(self) -> defer.Deferred:
        """Delete every record of the channel (after the queue is written)."""
        for waiting in self._sent.values():
            if waiting.__class__ is int:
                self.writer.cancel(waiting)
        self._sent.clear()
        self._sent_order.clear()
        self._cancel_sent_timer()
        self.writer.queue("DEL", self.key)
        return self.writer.flush()


def _dump(record: dict) -> str:
    return _ENCODER.encode(record)


def dump_record(record: dict) -> str:
    """A record as the JSON text stored in the hash."""
    return _ENCODER.encode(record)


def _pairs(flat: list):
    return zip(flat[0::2], flat[1::2])


def _parse_field(field) -> tuple[str, int]:
    text = reply_text(field)
    if len(text) > 256:
        raise ValueError("field longer than 256 characters")
    entry_id, slash, part = text.rpartition("/")
    if not slash or not entry_id or not part.isdigit() or len(part) > 6:
        raise ValueError("field is not <entry id>/<part>")
    return entry_id, int(part)


def _parse_record(value) -> dict:
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if not isinstance(value, str):
        value = str(value)
    if len(value) > MAX_RECORD_LENGTH:
        raise ValueError(f"record longer than {MAX_RECORD_LENGTH} characters")
    record = json.loads(value)
    if not isinstance(record, dict):
        raise ValueError("record is not a JSON object")
    return record
