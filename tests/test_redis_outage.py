# Redis restarted under a running service.
"""Losing Redis pauses the service; it resumes on its own and loses nothing."""

from twisted.internet import defer
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from cmppsvc import keys
from cmppsvc.redisoutage import failure_text
from tests.endtoend import wait_for
from tests.redisserver import start_redis
from tests.test_collection_support import (
    answered_ids,
    channel_ids,
    record,
    send_many,
    start_service,
    start_simulator,
)


class RedisRestartTests(TestCase):
    """Redis goes away and comes back while messages flow."""

    timeout = 90

    @defer.inlineCallbacks
    def test_redis_restarted_while_traffic_flows(self):
        server, redis = yield start_redis(self)
        simulator, port = yield start_simulator(self, ["a0", "a1"])
        ids = channel_ids(2)
        for channel_id, account in zip(ids, ["a0", "a1"]):
            yield redis.set(
                keys.channel_info(channel_id), record(channel_id, account, port)
            )
        service = yield start_service(self, server, lease_ttl=6.0)
        yield wait_for(lambda: len(simulator.logged_in()) == 2)
        yield wait_for(lambda: service.watcher.subscriptions > 0)

        sent = []
        for channel_id in ids:
            sent += yield send_many(redis, channel_id, "before" + channel_id, 40)
        yield server.restart()
        yield wait_for(lambda: redis.ping().addErrback(lambda _: False))
        for channel_id in ids:
            sent += yield send_many(redis, channel_id, "after" + channel_id, 20)

        yield wait_for(
            lambda: answered_ids(redis).addCallback(lambda found: set(sent) <= found),
            timeout=40,
        )
        for channel_id in ids:
            pending = yield wait_for(
                lambda channel_id=channel_id: redis.execute_command(
                    "XPENDING", keys.mt_stream(channel_id), keys.MT_GROUP
                ).addCallback(lambda reply: int(reply[0]) == 0)
            )
            self.assertTrue(pending)
        # the service still reacts to commands: its subscription came back
        yield wait_for(lambda: service.watcher.subscriptions > 1)
        yield service.collection.stop_channel(ids[0])
        self.assertFalse(simulator.logged_in("a0"))
        self.assertEqual(simulator.doubles, [])


class FailureTextTests(SynchronousTestCase):
    """Log fields name what went wrong in words."""

    def test_a_timeout_says_how_long_was_waited(self):
        failure = Failure(defer.TimeoutError(30.0, "Deferred"))
        self.assertEqual(failure_text(failure), "no reply from Redis within 30 s")

    def test_other_errors_keep_their_message_or_type(self):
        self.assertEqual(failure_text(ValueError("bad")), "bad")
        self.assertEqual(
            failure_text(ConnectionDone()), "Connection was closed cleanly."
        )
        self.assertEqual(failure_text(KeyError()), "KeyError")
