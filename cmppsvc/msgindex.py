"""The Msg_Id index: which message and segment a Msg_Id belongs to.

A status report names only a Msg_Id, and arrives seconds or days after the
SUBMIT_RESP that gave it, on any connection of any process. Each answered
segment is therefore indexed in ``cmppsvc:msgid:<msg_id text>`` (a hash with a
TTL), written behind. A report can outrun the index write: ``lookup`` first
looks at entries of this process still waiting in the queue, then at Redis, and
when Redis has nothing it asks again a few times (another process may not have
flushed yet) before answering None. A report counted by ``mark_reported`` more
than once is a duplicate (atomic in Redis: any process, any connection).

Each segment of a long message has its own Msg_Id and its own entry here, all
naming the message (``id``) and the segment (``segment``/``segments``); the
rule that aggregates the segments' outcomes into the message's is in
``cmppsvc.outbound``. The index lives in Redis with a TTL (``ttl``, default 72
hours), so it survives restarts and crashes: a report for a Msg_Id answered
before a restart is still matched.
"""

from collections import OrderedDict

from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from cmppsvc import keys
from cmppsvc.writebehind import WriteBehind

#: Default lifetime of an index entry: reports later than this do not match.
TTL = 72 * 3600

#: Lookups that find nothing ask again after these delays (seconds): about
#: half a second in all, long enough for another process's write-behind.
LOOKUP_RETRY_DELAYS = (0.05, 0.15, 0.3)

#: Field counting reports of the entry (1 after the first report).
REPORTED = "reported"

#: Most fields accepted in an entry read back from Redis.
MAX_FIELDS = 64

# Counts a report and keeps the entry's TTL: an entry created by the count
# alone (a report for an unknown Msg_Id) must expire too.
_MARK_SCRIPT = """
local count = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
if redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return count
"""


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


class MsgIdIndex:
    """Msg_Id -> entry (message id, segment, segments, channel, submit time,
    response time, ...), written behind with a TTL."""

    log = Logger()

    def __init__(
        self,
        writer: WriteBehind,
        redis,
        clock: IReactorTime,
        ttl: float = TTL,
        lookup_retry_delays: tuple[float, ...] = LOOKUP_RETRY_DELAYS,
    ):
        self.writer = writer
        self.redis = redis
        self.clock = clock
        self.ttl_ms = int(ttl * 1000)
        self.lookup_retry_delays = lookup_retry_delays

        # msg_id -> (write-behind serial, entry), oldest first; dropped once
        # the writer has written that serial.
        self._unwritten = OrderedDict()
        writer.add_after_write(self._written)

    def put(self, msg_id: int, entry: dict) -> None:
        """Index ``msg_id`` (written behind); values str, int or float."""
        key = keys.msgid(str(msg_id))
        arguments = ["HSET", key]
        for name, value in entry.items():
            arguments.append(name)
            arguments.append(value)
        self.writer.queue(*arguments)
        serial = self.writer.queue("PEXPIRE", key, self.ttl_ms)

        self._unwritten.pop(msg_id, None)
        self._unwritten[msg_id] = (
            serial,
            {name: _text(v) for name, v in entry.items()},
        )

    def _written(self, serial: int):
        unwritten = self._unwritten
        while unwritten:
            msg_id, (entry_serial, _entry) = next(iter(unwritten.items()))
            if entry_serial > serial:
                break
            del unwritten[msg_id]

    @defer.inlineCallbacks
    def lookup(self, msg_id: int):
        """Fires with the entry of ``msg_id`` as {field: text}, or None.

        Waits a bounded time (``lookup_retry_delays``) before answering None.
        """
        delays = iter(self.lookup_retry_delays)
        while True:
            waiting = self._unwritten.get(msg_id)
            if waiting is not None:
                return dict(waiting[1])

            entry = yield self._read(msg_id)
            if entry is not None:
                return entry

            delay = next(delays, None)
            if delay is None:
                return None
            yield task.deferLater(self.clock, delay, lambda: None)

    @defer.inlineCallbacks
    def _read(self, msg_id: int):
        reply = yield self.redis.execute_command("HGETALL", keys.msgid(str(msg_id)))
        if isinstance(reply, dict):
            items = list(reply.items())
        else:
            reply = reply or []
            items = list(zip(reply[0::2], reply[1::2], strict=False))
        if len(items) > MAX_FIELDS:
            self.log.warn(
                "Msg_Id entry has too many fields msg_id={msg_id} fields={fields}",
                msg_id=str(msg_id),
                fields=len(items),
            )
            items = items[:MAX_FIELDS]
        entry = {_text(name): _text(value) for name, value in items}

        # An entry holding only the report count was made by mark_reported for
        # a Msg_Id whose index write has not arrived (yet).
        entry.pop(REPORTED, None)
        return entry or None

    @defer.inlineCallbacks
    def mark_reported(self, msg_id: int):
        """Count a report for ``msg_id``; fires True the first time, False for
        a duplicate. Atomic in Redis, so safe across processes."""
        if msg_id in self._unwritten:
            # Keep the index write ahead of the count: same key, same order.
            yield self.writer.flush()
        count = yield self.redis.eval(
            _MARK_SCRIPT, [keys.msgid(str(msg_id))], [REPORTED, self.ttl_ms]
        )
        return int(count) == 1
