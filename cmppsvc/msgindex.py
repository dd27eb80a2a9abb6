# -*- test-case-name: tests.test_msgindex -*-
"""The Msg_Id index: which message and segment a Msg_Id belongs to.

A status report names only a Msg_Id, and arrives seconds or days after the
SUBMIT_RESP that gave it, on any connection of any process. Each answered
segment is therefore indexed in ``cmppsvc:msgid:<msg_id text>`` (a hash with a
TTL), written behind.

Most reports come back to the process that sent the message, so each process
keeps a bounded map of the entries it indexed recently. ``report`` is the hot
path, batched for every report of a reactor turn:

- a report whose entry this process indexed is matched and counted here, with
  no round trip: the count is written behind to the entry (HINCRBY), in order
  after the index write, for any other process that reads it later;
- any other report (indexed by another process, or too old for the map) is
  matched and counted in Redis, atomically, in ONE script run for the batch:
  the entry is read and the count incremented only when the entry exists. When
  it does not (yet: another process may not have flushed), it asks again with
  backoff for about five seconds (``report_retry_delays``) before it is
  answered unmatched. The DELIVER_RESP is already sent; nothing waits on it.

A report counted more than once is a duplicate. Only the channel's owner
receives its reports, so counting here is exact while this process runs the
channel; each time a channel starts here, the entries of its earlier runs are
no longer counted here (``forget_channel``) but in Redis, where another process
may have counted them meanwhile. Shortcoming: two channel records for one
gateway account, run by different processes, break the premise; a duplicate
report the gateway hands to the other process's connection is then not always
recognised as one.

``lookup`` reads one entry, without counting.

Each segment of a long message has its own Msg_Id and its own entry here, all
naming the message (``id``) and the segment (``segment``/``segments``); the
rule that aggregates the segments' outcomes into the message's is in
``cmppsvc.outbound``. The index lives in Redis with a TTL (``ttl``, default 72
hours), so it survives restarts and crashes: a report for a Msg_Id answered
before a restart is still matched.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable

from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from cmppsvc import keys
from cmppsvc.redisconn import reply_text
from cmppsvc.writebehind import WriteBehind

#: Default lifetime of an index entry: reports later than this do not match.
TTL = 72 * 3600

#: ``lookup`` asks again after these delays (seconds) when it finds nothing:
#: about half a second in all.
LOOKUP_RETRY_DELAYS = (0.05, 0.15, 0.3)

#: ``report`` asks again after these delays (seconds) when the entry is not in
#: Redis yet: five seconds in all, long enough for another process's
#: write-behind even under load.
REPORT_RETRY_DELAYS = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 1.85)

#: Most reports waiting for a retry; beyond it a miss is answered unmatched at
#: once (a flood of reports for unknown Msg_Ids must not pile up).
MAX_RETRYING = 100_000

#: Entries this process indexed that are kept in memory for matching reports
#: (oldest dropped first; a dropped one is read from Redis instead).
RECENT = 100_000

#: Most reports matched by one script run.
MAX_REPORT_BATCH = 1000

#: Field counting reports of the entry (1 after the first report).
REPORTED = "reported"

#: Most fields accepted in an entry read back from Redis.
MAX_FIELDS = 64

# Matches and counts a batch of reports of entries not indexed here. ARGV: the
# count field. Per key the entry is read and counted only when it has fields
# other than the count; the reply is {count, field, value, ...}, or {0} for
# "not found, not counted".
_REPORT_SCRIPT = """
local reported = ARGV[1]
local result = {}
for index, key in ipairs(KEYS) do
  local fields = redis.call('HGETALL', key)
  local found = false
  for position = 1, #fields, 2 do
    if fields[position] ~= reported then
      found = true
      break
    end
  end
  if found then
    local reply = {redis.call('HINCRBY', key, reported, 1)}
    for position = 1, #fields do
      reply[position + 1] = fields[position]
    end
    result[index] = reply
  else
    result[index] = {0}
  end
end
return result
"""


def _known_entry(known: tuple) -> dict:
    """{field: text} of an entry remembered by ``MsgIdIndex._remember``."""
    return dict(zip(known[4::2], known[5::2]))


def _entry(items: Iterable, msg_id: int, log: Logger) -> dict | None:
    """{field: text} of an entry read back, without the report count; None
    when nothing but the count is there."""
    items = list(items)
    if len(items) > MAX_FIELDS:
        log.warn(
            "Msg_Id entry has too many fields msg_id={msg_id} fields={fields}",
            msg_id=str(msg_id),
            fields=len(items),
        )
        items = items[:MAX_FIELDS]
    entry = {reply_text(name): reply_text(value) for name, value in items}

    # An entry holding only the report count was made by a count for a
    # Msg_Id whose index write has not arrived (yet).
    entry.pop(REPORTED, None)
    return entry or None


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
        report_retry_delays: tuple[float, ...] = REPORT_RETRY_DELAYS,
        recent: int = RECENT,
    ):
        self.writer = writer
        self.redis = redis
        self.clock = clock
        self.ttl_ms = int(ttl * 1000)
        self.lookup_retry_delays = lookup_retry_delays
        self.report_retry_delays = report_retry_delays
        self.recent_limit = recent

        # msg_id -> (clock time, reports counted, name, text, name, text, ...)
        # for entries this process indexed, oldest first.
        self._recent: OrderedDict = OrderedDict()
        # channel id -> how many times it stopped running here; an entry
        # remembered during an earlier run is counted in Redis.
        self._runs: dict[str, int] = {}
        # Reports to match in the next script run: (msg_id, attempt, Deferred).
        self._reports: list = []
        self._report_call = None
        self._retrying = 0

    def put(self, msg_id: int, entry: dict) -> None:
        """Index ``msg_id`` (written behind); values str, int or float."""
        commands = self._commands(msg_id, entry)
        self.writer.queue_together(*commands)
        self._remember(msg_id, commands[0], entry.get("channel", ""))

    def put_commands(self, msg_id: int, entry: dict) -> tuple[tuple, tuple]:
        """The commands indexing ``msg_id``, for a caller that queues them
        together with the writes they go with; the entry is kept in memory
        from now on, for reports that come back to this process."""
        commands = self._commands(msg_id, entry)
        self._remember(msg_id, commands[0], entry.get("channel", ""))
        return commands

    def _commands(self, msg_id: int, entry: dict) -> tuple[tuple, tuple]:
        key = keys.msgid(str(msg_id))
        arguments = ["HSET", key]
        for item in entry.items():
            arguments += item
        return tuple(arguments), ("PEXPIRE", key, self.ttl_ms)

    def _remember(self, msg_id: int, hset: tuple, channel_id: str) -> None:
        # A tuple of (time, reports counted, channel, the channel's run here,
        # name, text, name, text, ...): holding no container, the collector
        # stops tracking it after its first pass, so a hundred thousand
        # remembered entries do not lengthen every full collection (a list or
        # dict per entry did: pauses of tens of ms).
        texts = [self.clock.seconds(), 0, channel_id, self._runs.get(channel_id, 0)]
        texts += [
            value if value.__class__ is str else reply_text(value) for value in hset[2:]
        ]
        recent = self._recent
        if msg_id in recent:
            del recent[msg_id]
        recent[msg_id] = tuple(texts)
        if len(recent) > self.recent_limit:
            recent.popitem(last=False)

    # -- reports ----------------------------------------------------------------

    def report(self, msg_id: int) -> defer.Deferred:
        """Match and count one status report: fires with (entry, first), where
        entry is {field: text} or None (unmatched, not counted) and first is
        False for a duplicate. Batched with every report of the reactor turn."""
        d = defer.Deferred()
        self.report_with_callbacks(msg_id, d.callback, d.errback)
        return d

    def report_with_callbacks(
        self,
        msg_id: int,
        matched: Callable[..., object],
        failed: Callable[..., object],
        *arguments,
    ) -> None:
        """``report`` without a Deferred, for the hot path: exactly one of
        ``matched((entry, first), *arguments)`` or ``failed(failure,
        *arguments)`` is called, at once for an entry indexed here, later
        (batched with the reactor turn's others) for one read from Redis."""
        report = (msg_id, 0, (matched, failed, arguments))
        if self._count_here(report, self.clock.seconds()):
            return
        self._reports.append(report)
        if self._report_call is None:
            self._report_call = self.clock.callLater(0, self._match_reports)

    def _match_reports(self) -> None:
        self._report_call = None
        reports, self._reports = self._reports, []
        for start in range(0, len(reports), MAX_REPORT_BATCH):
            self._match_batch(reports[start : start + MAX_REPORT_BATCH])

    def _count_here(self, report: tuple, now: float) -> bool:
        """Match and count ``report`` from the map when its entry was indexed
        here, in the channel's current run and within half its TTL (older
        entries are Redis's to expire); False when Redis must."""
        msg_id = report[0]
        known = self._recent.get(msg_id)
        if (
            known is None
            or known[0] < now - self.ttl_ms / 2000
            or known[3] != self._runs.get(known[2], 0)
        ):
            return False

        # The expiry is set again (unchanged): should the entry be gone from
        # Redis (a restart without persistence), the count alone must not
        # stay forever.
        key = keys.msgid(str(msg_id))
        left_ms = self.ttl_ms - int((now - known[0]) * 1000)
        matched, failed, arguments = report[2]
        try:
            self.writer.queue_together(
                ("HINCRBY", key, REPORTED, 1), ("PEXPIRE", key, max(left_ms, 1))
            )
        except Exception:
            # The write queue is full (Redis away too long): not counted.
            self._answer(failed, Failure(), *arguments)
            return True

        count = known[1] + 1
        self._recent[msg_id] = (known[0], count, *known[2:])
        self._answer(matched, (_known_entry(known), count == 1), *arguments)
        return True

    def _match_batch(self, reports: list) -> None:
        now = self.clock.seconds()
        elsewhere = [report for report in reports if not self._count_here(report, now)]
        if not elsewhere:
            return

        names = [keys.msgid(str(msg_id)) for msg_id, _attempt, _d in elsewhere]
        try:
            running = self.redis.eval(_REPORT_SCRIPT, names, [REPORTED])
        except Exception:
            running = defer.fail()
        running.addCallbacks(
            self._matched, self._match_failed, (elsewhere,), None, (elsewhere,)
        )

    def _matched(self, replies, reports: list) -> None:
        for (msg_id, attempt, d), reply in zip(reports, replies):
            count = int(reply[0])
            if count == 0:
                self._answer(self._not_found, msg_id, attempt, d)
                continue
            flat = reply[1:]
            entry = _entry(zip(flat[0::2], flat[1::2]), msg_id, self.log) or {}
            self._answer(d[0], (entry, count == 1), *d[2])

    def _match_failed(self, failure, reports: list) -> None:
        for _msg_id, _attempt, (_matched, failed, arguments) in reports:
            self._answer(failed, failure, *arguments)

    def _answer(self, callback, *arguments) -> None:
        # One caller's exception must not cost the other reports of the batch
        # their answer.
        try:
            callback(*arguments)
        except Exception:
            self.log.failure("report callback failed")

    def _not_found(self, msg_id: int, attempt: int, d: defer.Deferred) -> None:
        delays = self.report_retry_delays
        if attempt >= len(delays) or self._retrying >= MAX_RETRYING:
            matched, _failed, arguments = d
            matched((None, True), *arguments)
            return
        self._retrying += 1
        self.clock.callLater(delays[attempt], self._retry, msg_id, attempt + 1, d)

    def _retry(self, msg_id: int, attempt: int, d: defer.Deferred) -> None:
        self._retrying -= 1
        self._reports.append((msg_id, attempt, d))
        if self._report_call is None:
            self._report_call = self.clock.callLater(0, self._match_reports)

    def forget_channel(self, channel_id: str) -> None:
        """Start a new run of ``channel_id`` here: reports of the entries
        indexed before are counted in Redis from now on (call it when the
        channel starts, before it indexes anything). O(1): the entries stay in
        the map, marked as of an earlier run."""
        self._runs[channel_id] = self._runs.get(channel_id, 0) + 1

    # -- one at a time -------------------------------------------------------------

    @defer.inlineCallbacks
    def lookup(self, msg_id: int):
        """Fires with the entry of ``msg_id`` as {field: text}, or None.

        Waits a bounded time (``lookup_retry_delays``) before answering None.
        """
        delays = iter(self.lookup_retry_delays)
        while True:
            known = self._recent.get(msg_id)
            if known is not None:
                return _known_entry(known)

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
            items = list(zip(reply[0::2], reply[1::2]))
        return _entry(items, msg_id, self.log)
