"""The submits of a channel that are sent and not yet answered, kept in Redis.

Each submit is recorded under its seq when it goes out and removed when its
answer arrives, both written behind. After a restart ``load()`` returns what was
left, so the channel can resend those submits or mark them unknown.
"""

import json

from twisted.internet import defer
from twisted.logger import Logger

from cmppsvc import keys
from cmppsvc.writebehind import WriteBehind

#: Longest record accepted back from Redis (characters of JSON).
MAX_RECORD_LENGTH = 64 * 1024


class InFlightStore:
    """Hash ``cmppsvc:inflight:<channel>``: seq -> JSON submit record.

    A record is a JSON-serialisable dict: message id, segment, segments, submit
    time, MT stream entry id, destination, ...
    """

    log = Logger()

    def __init__(self, writer: WriteBehind, redis, channel_id: str):
        self.writer = writer
        self.redis = redis
        self.channel_id = channel_id
        self.key = keys.inflight(channel_id)

    def add(self, seq: int, record: dict) -> None:
        """Record a submit as in flight under ``seq`` (written behind)."""
        self.writer.queue(
            "HSET", self.key, seq, json.dumps(record, separators=(",", ":"))
        )

    def remove(self, seq: int) -> None:
        """Forget the submit under ``seq``: it has an answer (written behind)."""
        self.writer.queue("HDEL", self.key, seq)

    @defer.inlineCallbacks
    def load(self):
        """Fires with {seq: record} of everything recorded and not removed.

        Waits for the write-behind queue first, so it sees this process's own
        writes. Entries that are not valid records are logged and skipped.
        """
        yield self.writer.flush()
        reply = yield self.redis.execute_command("HGETALL", self.key)
        items = reply.items() if isinstance(reply, dict) else _pairs(reply or [])

        records = {}
        for field, value in items:
            try:
                records[int(field)] = _parse_record(value)
            except ValueError as error:
                self.log.warn(
                    "skipping a bad in-flight record channel={channel} "
                    "field={field!r}: {error}",
                    channel=self.channel_id,
                    field=str(field)[:40],
                    error=error,
                )
        return records

    def clear(self) -> defer.Deferred:
        """Delete every record of the channel (after the queue is written)."""
        self.writer.queue("DEL", self.key)
        return self.writer.flush()


def _pairs(flat: list):
    return zip(flat[0::2], flat[1::2], strict=False)


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
