# Two service instances sharing ten channels on one real Redis.
"""Leases decide which instance runs a channel; a dead instance's channels are
taken over once its leases expire, and no account is ever logged in twice."""

from twisted.internet import defer
from twisted.trial.unittest import TestCase

from cmppsvc import keys
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

CHANNELS = 10
TTL = 1.5


class _Silent:
    """A Redis stand-in whose commands are never answered (a network split
    seen from the lease keeper)."""

    def execute_command(self, *arguments):
        return defer.Deferred()


class TwoInstancesTests(TestCase):
    """Ten channels, two instances, one of them going away."""

    timeout = 60

    @defer.inlineCallbacks
    def _platform(self):
        server, redis = yield start_redis(self)
        ids = channel_ids(CHANNELS)
        accounts = [f"a{number}" for number in range(CHANNELS)]
        simulator, port = yield start_simulator(self, accounts)
        for channel_id, account in zip(ids, accounts):
            yield redis.set(
                keys.channel_info(channel_id), record(channel_id, account, port)
            )

        first = yield start_service(self, server, "alpha", lease_ttl=TTL)
        yield wait_for(lambda: len(simulator.logged_in()) == CHANNELS)
        second = yield start_service(self, server, "beta", lease_ttl=TTL)
        return server, redis, ids, simulator, first, second

    @defer.inlineCallbacks
    def _owners(self, redis, ids):
        owners = []
        for channel_id in ids:
            owner = yield redis.get(keys.lease(channel_id))
            owners.append(owner.decode() if isinstance(owner, bytes) else owner)
        return owners

    @defer.inlineCallbacks
    def test_dead_instance_channels_taken_over(self):
        server, redis, ids, simulator, first, second = yield self._platform()
        self.assertEqual(len(first.collection), CHANNELS)
        self.assertEqual(len(second.collection), 0)
        self.assertEqual((yield self._owners(redis, ids)), [first.owner] * CHANNELS)

        sent = {}
        for channel_id in ids:
            sent[channel_id] = yield send_many(redis, channel_id, channel_id, 3)

        # stopped without cleanup: nothing renewed, nothing released
        first.collection.leases.halt()
        yield first.stopService()
        # the leases stay until they expire
        owners = yield self._owners(redis, ids)
        self.assertEqual(owners, [first.owner] * CHANNELS)
        for channel_id in ids:
            sent[channel_id] += yield send_many(
                redis, channel_id, "late" + channel_id, 2
            )

        yield wait_for(lambda: len(second.collection) == CHANNELS, timeout=TTL * 6)
        yield wait_for(lambda: len(simulator.logged_in()) == CHANNELS)
        self.assertEqual((yield self._owners(redis, ids)), [second.owner] * CHANNELS)

        everything = {message for messages in sent.values() for message in messages}
        yield wait_for(
            lambda: answered_ids(redis).addCallback(lambda ids: everything <= ids)
        )
        yield second.stores.writer.flush()
        statuses = yield second.collection.read_statuses()
        self.assertEqual({s["owner"] for s in statuses}, {second.owner})
        self.assertEqual(simulator.doubles, [])
        self.assertEqual(sum(simulator.logins.values()), 2 * CHANNELS)

    @defer.inlineCallbacks
    def test_instance_losing_its_leases_stops_before_takeover(self):
        server, redis, ids, simulator, first, second = yield self._platform()

        # a network split between the first instance and Redis, seen by its
        # lease keeper only: its channels stay connected until it gives up
        first.collection.leases.redis = _Silent()
        yield wait_for(lambda: len(first.collection) == 0, timeout=TTL * 4)
        yield wait_for(lambda: len(second.collection) == CHANNELS, timeout=TTL * 6)
        yield wait_for(lambda: len(simulator.logged_in()) == CHANNELS)
        self.assertEqual((yield self._owners(redis, ids)), [second.owner] * CHANNELS)
        self.assertEqual(simulator.doubles, [])
