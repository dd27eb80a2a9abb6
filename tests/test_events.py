# Tests for cmppsvc.events: events appended to the capped events stream.
from twisted.internet import defer, reactor
from twisted.trial import unittest

from cmppsvc import keys
from cmppsvc.events import EventWriter
from cmppsvc.writebehind import WriteBehind
from tests.redisserver import start_redis


class EventWriterTests(unittest.TestCase):
    """Against a real redis-server."""

    timeout = 30

    @defer.inlineCallbacks
    def test_emit_writes_text_fields_in_order(self):
        server, redis = yield start_redis(self, persistent=False)
        writer = WriteBehind(redis, reactor)
        events = EventWriter(writer, maxlen=1000)
        events.emit({"type": "submit", "channel": "c1", "id": "007", "seq": 5})
        events.emit({"type": "report", "channel": "c1", "latency_ms": 1.5})
        yield writer.flush()

        entries = yield redis.execute_command("XRANGE", keys.EVENTS, "-", "+")
        fields = [entry[1] for entry in entries]
        self.assertEqual(
            fields,
            [
                ["type", "submit", "channel", "c1", "id", "007", "seq", "5"],
                ["type", "report", "channel", "c1", "latency_ms", "1.5"],
            ],
        )

    def test_bad_values_are_refused(self):
        events = EventWriter(WriteBehind(None, reactor))
        self.assertRaises(ValueError, events.emit, {})
        self.assertRaises(TypeError, events.emit, {"type": None})

    def test_command_is_the_xadd_emit_queues(self):
        events = EventWriter(WriteBehind(None, reactor), maxlen=10)
        self.assertEqual(
            events.command({"type": "mo", "seq": 5}),
            ("XADD", keys.EVENTS, "MAXLEN", "~", 10, "*", "type", "mo", "seq", 5),
        )
        self.assertRaises(ValueError, events.command, {})
