"""The flat JSON log lines operators' tools read."""

import io
import json

from twisted.logger import Logger, LogLevel, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from cmppsvc.logjson import FlatJSONObserver, flatten_event


class FlattenTests(SynchronousTestCase):
    def event(self, **fields):
        event = {
            "log_level": LogLevel.error,
            "log_namespace": "cmppsvc.connector",
            "log_format": "connect failed channel={channel}",
            "log_time": 1575512606.5,
        }
        event.update(fields)
        return event

    def test_the_operator_line_shape(self):
        flat = flatten_event(self.event(channel="7645731233987584", attempt=3))
        self.assertEqual(
            flat,
            {
                "time": "2019-12-05T02:23:26.500+00:00",
                "level": "error",
                "module": "cmppsvc.connector",
                "msg": "connect failed channel=7645731233987584",
                "channel": "7645731233987584",
                "attempt": 3,
            },
        )

    def test_every_level_by_its_name(self):
        for level in LogLevel.iterconstants():
            self.assertEqual(
                flatten_event(self.event(log_level=level))["level"], level.name
            )

    def test_containers_are_left_out_a_failure_is_named(self):
        try:
            raise ValueError("bad PDU")
        except ValueError:
            failure = Failure()
        flat = flatten_event(self.event(pdu=[1, 2], log_failure=failure))
        self.assertNotIn("pdu", flat)
        self.assertEqual(flat["error"], "bad PDU")
        self.assertIn("ValueError", flat["traceback"])

    def test_one_json_object_per_line(self):
        stream = io.StringIO()
        observer = FlatJSONObserver(stream)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        Logger(namespace="cmppsvc.test").info("hello {who}", who="你好")
        [line] = stream.getvalue().splitlines()
        self.assertEqual(json.loads(line)["who"], "你好")
        self.assertEqual(json.loads(line)["level"], "info")
