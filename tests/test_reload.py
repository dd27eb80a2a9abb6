# Where record changes and operator commands come from.
"""Commands parsed and bounded; pub/sub messages routed; the rescan runs."""

import json

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from cmppsvc import keys
from cmppsvc.commands import BadCommand, Command, parse_command, publish_command
from cmppsvc.reload import RecordWatcher
from tests.redisserver import start_redis
from tests.test_collection_support import stopped_members


class ParseCommandTests(SynchronousTestCase):
    """The JSON of cmppsvc:control."""

    def test_good_commands(self):
        self.assertEqual(
            parse_command(b'{"action": "stop", "channel": "42"}'), Command("stop", "42")
        )
        self.assertEqual(parse_command('{"action": "reload"}'), Command("reload"))
        command = Command("start", "7")
        self.assertEqual(parse_command(command.to_json()), command)

    def test_bad_commands_name_the_problem(self):
        cases = {
            b"x" * 2000: "longer",
            b"\xff": "JSON",
            b"[1]": "object",
            b'{"action": "drop", "channel": "1"}': "action",
            b'{"action": "stop"}': "needs a channel",
            b'{"action": "stop", "channel": 5}': "string",
            b'{"action": "stop", "channel": "a*"}': "'*'",
            json.dumps({"action": "stop", "channel": "x" * 300}).encode(): "longer",
        }
        for message, words in cases.items():
            with self.assertRaises(BadCommand) as caught:
                parse_command(message)
            self.assertIn(words, str(caught.exception))


class RoutingTests(SynchronousTestCase):
    """Each source of change ends in `changed`; commands in `command`."""

    def setUp(self):
        self.clock = Clock()
        self.changes = []
        self.commands = []
        self.watcher = RecordWatcher(
            None, self.clock, self.changes.append, self.commands.append, 30.0
        )

    def test_config_changed_channel(self):
        self.watcher.message_received(None, keys.CONFIG_CHANGED, b"77")
        self.watcher.message_received(None, keys.CONFIG_CHANGED, b"*")
        self.watcher.message_received(None, keys.CONFIG_CHANGED, b"")
        self.assertEqual(self.changes, ["77", None, None])

    def test_keyspace_notification(self):
        pattern = self.watcher.keyspace_pattern
        self.watcher.message_received(
            pattern, "__keyspace@0__:" + keys.channel_info("88"), b"set"
        )
        self.assertEqual(self.changes, ["88"])

    def test_control_commands_and_garbage(self):
        self.watcher.message_received(
            None, keys.CONTROL, b'{"action":"stop","channel":"9"}'
        )
        self.watcher.message_received(None, keys.CONTROL, b"garbage")
        self.assertEqual(self.commands, [Command("stop", "9")])

    def test_periodic_rescan(self):
        self.watcher.startService()
        self.clock.advance(30.0)
        self.clock.advance(30.0)
        self.watcher.stopService()
        self.clock.advance(30.0)
        self.assertEqual(self.changes, [None, None])


class PublishTests(TestCase):
    """publish_command records a stop before anyone hears of it."""

    timeout = 30

    @defer.inlineCallbacks
    def test_stop_and_start_recorded(self):
        _server, redis = yield start_redis(self, persistent=False)
        yield publish_command(redis, "stop", "5")
        self.assertEqual((yield stopped_members(redis)), {"5"})
        yield publish_command(redis, "start", "5")
        self.assertEqual((yield stopped_members(redis)), set())
        with self.assertRaises(BadCommand):
            yield publish_command(redis, "stop", None)
