# Claiming MT entries another consumer left pending, against a real Redis.
"""A channel taken over gets the entries its previous owner left pending; a
channel nobody left entries on is not claimed for again."""

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


class ClaimTests(TestCase):
    """One channel, entries left pending by a consumer that is gone."""

    timeout = 60

    @defer.inlineCallbacks
    def _platform(self):
        server, redis = yield start_redis(self)
        simulator, port = yield start_simulator(self, ["a0"])
        (channel_id,) = channel_ids(1)
        yield redis.set(keys.channel_info(channel_id), record(channel_id, "a0", port))
        return server, redis, simulator, channel_id

    @defer.inlineCallbacks
    def test_entries_left_by_another_consumer_are_claimed(self):
        server, redis, simulator, channel_id = yield self._platform()
        stream = keys.mt_stream(channel_id)
        yield redis.execute_command(
            "XGROUP", "CREATE", stream, keys.MT_GROUP, "0", "MKSTREAM"
        )
        left = yield send_many(redis, channel_id, "left", 3)
        # a process that read them and died before answering
        yield redis.execute_command(
            "XREADGROUP", "GROUP", keys.MT_GROUP, "ghost", "STREAMS", stream, ">"
        )

        service = yield start_service(self, server, "heir", lease_ttl=0.6)
        yield wait_for(
            lambda: answered_ids(redis).addCallback(lambda found: set(left) <= found)
        )
        self.assertEqual(len(service.collection), 1)

    @defer.inlineCallbacks
    def test_nothing_pending_elsewhere_means_no_claims(self):
        server, redis, simulator, channel_id = yield self._platform()
        service = yield start_service(self, server, "alone", lease_ttl=0.6)
        reader = service.stores.mt_reader
        claims = []
        claim_stale = reader.claim_stale

        def counting(*arguments):
            claims.append(arguments)
            return claim_stale(*arguments)

        reader.claim_stale = counting
        # the start's check found nothing pending for another consumer
        yield wait_for(lambda: not service.collection._taken_at)
        sent = yield send_many(redis, channel_id, "fresh", 3)
        yield wait_for(
            lambda: answered_ids(redis).addCallback(lambda found: set(sent) <= found)
        )
        self.assertEqual(claims, [])
