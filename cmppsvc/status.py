# -*- test-case-name: tests.test_status -*-
"""Channel status hashes ``cmppsvc:status:<id>``: state, last error, counters.

Status changes often (counters per message), but only the latest value of each
field matters, so updates are merged in memory and written once per batch of
the write-behind queue.
"""

from twisted.internet import defer

from cmppsvc import keys
from cmppsvc.redisconn import reply_text
from cmppsvc.writebehind import WriteBehind


class StatusWriter:
    """Coalesces status updates per channel and writes them behind."""

    def __init__(self, writer: WriteBehind):
        self.writer = writer
        self._pending = {}
        writer.add_before_send(self._queue_pending)

    def update(self, channel_id: str, fields: dict) -> None:
        """Set fields of a channel's status; values str, int or float.

        Repeated updates before the next batch collapse into one HSET.
        """
        pending = self._pending.get(channel_id)
        if pending is None:
            self._pending[channel_id] = dict(fields)
            self.writer.request_send()
        else:
            pending.update(fields)

    @staticmethod
    def read(redis, channel_id: str) -> defer.Deferred:
        """Fires with a channel's status as {field: text} ({} when none)."""
        return read(redis, channel_id)

    def _queue_pending(self):
        pending, self._pending = self._pending, {}
        for channel_id, fields in pending.items():
            if not fields:
                continue
            arguments = ["HSET", keys.status(channel_id)]
            for name, value in fields.items():
                arguments.append(name)
                arguments.append(value)
            self.writer.queue(*arguments)


@defer.inlineCallbacks
def read(redis, channel_id: str):
    """Fires with a channel's status as {field: text} ({} when none)."""
    reply = yield redis.execute_command("HGETALL", keys.status(channel_id))
    if isinstance(reply, dict):
        items = reply.items()
    else:
        items = zip(reply[0::2], reply[1::2]) if reply else ()
    return {reply_text(name): reply_text(value) for name, value in items}
