# -*- test-case-name: tests.test_events -*-
"""The events stream: submit results, reports, MO messages, state changes.

Events are appended to the one stream ``cmppsvc:events`` through the write-behind
queue, capped at about ``maxlen`` entries (``MAXLEN ~`` lets Redis trim whole
nodes, which is cheap). The fields of each type are in the events contract.
"""

from cmppsvc import keys
from cmppsvc.writebehind import WriteBehind

#: Default cap of the events stream (approximate).
MAXLEN = 1_000_000


class EventWriter:
    """Appends events to ``cmppsvc:events``, written behind."""

    def __init__(self, writer: WriteBehind, maxlen: int = MAXLEN):
        self.writer = writer
        self.maxlen = maxlen
        #: The XADD arguments before the fields: a caller building an
        #: event's command itself appends field, value, ... to it.
        self.head = ("XADD", keys.EVENTS, "MAXLEN", "~", maxlen, "*")

    def command(self, fields: dict) -> tuple:
        """The XADD of one event, for a caller that queues it together with
        the writes it goes with. Raises ``ValueError`` for an empty event."""
        if not fields:
            raise ValueError("an event needs at least one field")
        arguments = list(self.head)
        for item in fields.items():
            arguments += item
        return tuple(arguments)

    def emit(self, fields: dict) -> int:
        """Queue one event; values may be str, int or float (sent as text).

        Returns the write-behind serial of the XADD. Raises ``TypeError`` for a
        value of another type and ``ValueError`` for an empty event.
        """
        return self.writer.queue(*self.command(fields))
