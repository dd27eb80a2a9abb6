# -*- test-case-name: tests.test_recovery,tests.test_restart -*-
"""What a channel does after a restart or a crash with work from before.

The MT stream is the source of truth for message content: an entry is
acknowledged (XACK) only in the same atomic write as the outcome of its last
part, and after a restart the MT reader hands this consumer's own pending
entries back first (keep ``--consumer`` stable). The in-flight hash
(``cmppsvc.inflight``) says, per part of such an entry:

- a done mark: its outcome event is already written; the part is skipped;
- an intended or sent record: the part was in flight (it may have reached the
  gateway, its answer was lost with the connection). The channel's policy
  decides, per channel, with the record's field ``restartPolicy``:

  - ``resend`` (the default): sent again with a new Sequence_Id; its submit
    event has ``resend=1`` (the gateway may deliver it twice);
  - ``unknown``: not sent again; a submit event with ``outcome=unknown`` and
    ``recovered=1`` is written as the part's final outcome;

- no record: the part was never handed to the connector; it is sent normally.

So every part gets exactly one final outcome event, and only parts in flight
at the stop or crash are resent, each marked. Sequence_Ids continue above
everything reserved before (``cmppsvc.sequence``), so a resend never reuses a
Sequence_Id that may still be in flight.

Records whose entry never comes back (it was deleted from the stream, or
acknowledged by hand) are resolved once the reader has handed over every
pending entry: their in-flight parts get ``outcome=unknown`` (the content is
gone, they cannot be resent) and their fields are deleted. Entries still
pending for another consumer are left alone: that consumer, or whoever claims
them, resolves them.

A graceful stop needs no recovery for parts still queued in the connector: they
were never sent, their records are deleted and the entry stays pending. Parts
whose answer did not come within the stop timeout are in flight and are
resolved by the policy at the next start.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from cmppsvc import keys
from cmppsvc.inflight import InFlightStore, event_command, is_done, queue_together
from cmppsvc.mtqueue import done_commands

log = Logger(namespace="cmppsvc.recovery")

RESEND = "resend"
UNKNOWN = "unknown"
POLICIES = (RESEND, UNKNOWN)

#: The channel record field naming the policy (ChannelConfig.restart_policy).
POLICY_FIELD = "restartPolicy"

#: Reason written in the event of a part resolved as unknown.
UNKNOWN_REASON = (
    "in flight when the service stopped or crashed: the gateway may hold it"
)


def channel_policy(config: Any) -> str:
    """The restart policy of a channel: its record's ``restartPolicy``.

    The config parser has already refused any value but ``resend`` and
    ``unknown``; a config without the attribute gets ``resend``.
    """
    value = getattr(config, "restart_policy", RESEND) or RESEND
    return value if value in POLICIES else RESEND


class Recovered:
    """The in-flight hash as a channel found it at start: entry -> parts."""

    def __init__(self, entries: dict[str, dict[int, dict]], policy: str = RESEND):
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, not {policy!r}")
        self.policy = policy
        self._entries = dict(entries)

    def __len__(self) -> int:
        return len(self._entries)

    def take(self, entry_id: str) -> dict[int, dict] | None:
        """The recorded parts of ``entry_id`` (removed from what is left)."""
        return self._entries.pop(entry_id, None)

    def entry_ids(self) -> list[str]:
        """Entries not taken yet."""
        return list(self._entries)

    def in_flight_count(self) -> int:
        """Parts (of entries not taken yet) that were in flight."""
        return sum(
            1
            for parts in self._entries.values()
            for record in parts.values()
            if not is_done(record)
        )


@defer.inlineCallbacks
def still_pending(redis: Any, channel_id: str, entry_id: str):
    """Fires True when ``entry_id`` is pending in the MT group (any consumer)."""
    reply = yield redis.execute_command(
        "XPENDING", keys.mt_stream(channel_id), keys.MT_GROUP, entry_id, entry_id, 1
    )
    return bool(reply)


def unknown_event(channel_id: str, record: dict, reason: str) -> dict:
    """The final submit event of a part whose outcome cannot be known."""
    return {
        "type": "submit",
        "channel": channel_id,
        "id": str(record.get("id", ""))[:128],
        "to": str(record.get("to", ""))[:32],
        "seq": _int(record.get("seq")) or "",
        "msg_id": "",
        "result": -1,
        "reason": reason,
        "outcome": "unknown",
        "latency_ms": "",
        "segment": _int(record.get("segment")) or "",
        "segments": _int(record.get("segments")) or "",
        "recovered": 1,
    }


@defer.inlineCallbacks
def resolve_leftovers(recovered: Recovered, inflight: InFlightStore, events: Any):
    """Resolve the records of entries the reader did not hand back: in-flight
    parts get ``outcome=unknown``, and the fields are deleted, in one atomic
    item per entry. Entries still pending for another consumer are kept."""
    channel_id = inflight.channel_id
    for entry_id in recovered.entry_ids():
        pending = yield still_pending(inflight.redis, channel_id, entry_id)
        if pending:
            continue
        parts = recovered.take(entry_id)
        if not parts:
            continue
        reason = UNKNOWN_REASON + "; its MT entry is no longer pending"
        commands = [
            event_command(events, unknown_event(channel_id, record, reason))
            for record in parts.values()
            if not is_done(record)
        ]
        commands.append(inflight.delete_command(entry_id, parts))
        queue_together(inflight.writer, *commands)
        log.warn(
            "in-flight parts of an entry no longer pending resolved as unknown "
            "channel={channel} entry={entry} parts={parts}",
            channel=channel_id,
            entry=entry_id,
            parts=len(commands) - 1,
        )


@defer.inlineCallbacks
def forget(inflight: InFlightStore, events: Any):
    """After an operator's stop: resolve what the channel left in flight and
    delete its cached keys.

    Parts left in flight get ``outcome=unknown`` (the channel will not run to
    resend them); an entry whose parts then all have outcomes is acknowledged
    and its records deleted. An entry with parts never sent stays pending, and
    so do its records (the next start needs them); the in-flight hash and the
    Sequence_Id high-water mark are deleted only when nothing is left (no
    Sequence_Id can then be in flight, so starting again from 1 is safe).
    Fires with the number of entries left.
    """
    channel_id = inflight.channel_id
    writer = inflight.writer
    entries = yield inflight.load()
    reason = (
        "channel stopped by the operator with the submit unanswered: "
        "the gateway may hold it"
    )

    left = 0
    for entry_id, parts in entries.items():
        total = max(_int(record.get("parts")) for record in parts.values())
        commands = []
        for part, record in sorted(parts.items()):
            if not is_done(record):
                commands.append(
                    event_command(events, unknown_event(channel_id, record, reason))
                )
                commands.append(inflight.done_command(entry_id, part, total or 1))
        if total and len(parts) >= total:
            commands.append(inflight.delete_command(entry_id, range(total)))
            commands += done_commands(channel_id, [entry_id])
        else:
            left += 1
        if commands:
            queue_together(writer, *commands)

    if not left:
        writer.queue("DEL", keys.inflight(channel_id), keys.sequence(channel_id))
    yield writer.flush()
    log.info(
        "channel {channel} forgotten: in-flight parts resolved, entries_left={left}",
        channel=channel_id,
        left=left,
    )
    return left


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
