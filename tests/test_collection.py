# The channel collection against a real Redis and the simulator.
"""Broken records, live changes of records, manual stop and start."""

import json

from twisted.internet import defer
from twisted.logger import capturedLogs
from twisted.trial.unittest import TestCase

from cmppsvc import keys
from cmppsvc.commands import Command, publish_command
from cmppsvc.status import read as read_status
from tests.endtoend import read_events, wait_for
from tests.redisserver import start_redis
from tests.test_collection_support import (
    PASSWORD,
    answered_ids,
    channel_ids,
    one_running_channel,
    record,
    send_many,
    start_service,
    start_simulator,
    stopped_members,
)


class BrokenRecordTests(TestCase):
    """A broken record is reported and skipped; its neighbours run."""

    timeout = 60

    @defer.inlineCallbacks
    def test_broken_records_next_to_a_good_one(self):
        server, redis = yield start_redis(self)
        simulator, port = yield start_simulator(self, ["a0"])
        good, bad_json, bad_type, no_gateway = channel_ids(4)
        missing = json.loads(record(no_gateway, "a3", port))
        del missing["gatewayIp"]
        del missing["channelIp"]
        yield redis.set(keys.channel_info(good), record(good, "a0", port))
        yield redis.set(keys.channel_info(bad_json), b'{"account": "a1", ')
        yield redis.set(
            keys.channel_info(bad_type), record(bad_type, "a2", port, gatewayPort="x")
        )
        yield redis.set(keys.channel_info(no_gateway), json.dumps(missing))
        yield send_many(redis, bad_json, "queued", 2)

        service = yield start_service(self, server)
        yield wait_for(lambda: simulator.logged_in("a0"))
        yield send_many(redis, good, "ok", 3)
        yield wait_for(
            lambda: answered_ids(redis, good).addCallback(lambda ids: len(ids) == 3)
        )

        collection = service.collection
        self.assertEqual([channel.name for channel in collection], [good])
        self.assertEqual(set(collection.broken), {bad_json, bad_type, no_gateway})

        yield service.stores.writer.flush()
        fields = {}
        for channel_id in (bad_json, bad_type, no_gateway):
            status = yield read_status(redis, channel_id)
            self.assertEqual(status["state"], "broken")
            self.assertIn(status["error_field"], status["last_error"])
            self.assertTrue(status["error_reason"])
            self.assertNotIn(PASSWORD, json.dumps(status))
            fields[channel_id] = status["error_field"]
        self.assertEqual(fields[bad_json], "record")
        self.assertEqual(fields[bad_type], "gatewayPort")
        self.assertEqual(fields[no_gateway], "gatewayIp")

        # the broken channel's messages stay queued, untouched
        length = yield redis.execute_command("XLEN", keys.mt_stream(bad_json))
        self.assertEqual(int(length), 2)
        events = yield read_events(redis)
        self.assertFalse([e for e in events if e["channel"] == bad_json])


class LiveChangeTests(TestCase):
    """Records changed, deleted and added while messages flow."""

    timeout = 90

    @defer.inlineCallbacks
    def test_change_delete_and_add_while_messages_flow(self):
        server, redis = yield start_redis(self)
        simulator, port = yield start_simulator(self, ["a0", "a1", "a2"])
        first, second, third = channel_ids(3)
        yield redis.set(keys.channel_info(first), record(first, "a0", port))
        yield redis.set(keys.channel_info(second), record(second, "a1", port))

        service = yield start_service(self, server, rescan_interval=60.0)
        collection = service.collection
        yield wait_for(lambda: len(simulator.logged_in()) == 2)
        yield wait_for(lambda: service.watcher.subscriptions > 0)

        # change: the admin system writes the record and notifies
        sent = yield send_many(redis, first, "before", 30)
        yield redis.set(
            keys.channel_info(first), record(first, "a0", port, wordsLen=67)
        )
        yield redis.publish(keys.CONFIG_CHANGED, first)
        sent += yield send_many(redis, first, "during", 30)
        yield wait_for(lambda: simulator.logins["a0"] == 2)
        yield wait_for(lambda: collection.channel(first) is not None)
        self.assertEqual(collection.channel(first).config.words_len, 67)
        sent += yield send_many(redis, first, "after", 10)

        # a change of a field cmppsvc ignores restarts nothing
        yield redis.set(
            keys.channel_info(second), record(second, "a1", port, updater="bob")
        )
        yield collection.reload_channel(second)

        # delete: the channel stops, its later messages stay queued
        yield redis.delete(keys.channel_info(second))
        yield redis.publish(keys.CONFIG_CHANGED, second)
        yield wait_for(lambda: not simulator.logged_in("a1"))
        self.assertIsNone(collection.channel(second))
        yield send_many(redis, second, "kept", 2)

        # add: noticed through keyspace notifications, no publish
        yield redis.execute_command("CONFIG", "SET", "notify-keyspace-events", "K$g")
        yield redis.set(keys.channel_info(third), record(third, "a2", port))
        yield wait_for(lambda: simulator.logged_in("a2"))

        answered = yield wait_for(
            lambda: answered_ids(redis, first).addCallback(
                lambda ids: ids if set(sent) <= ids else None
            )
        )
        self.assertTrue(set(sent) <= answered)
        self.assertEqual(simulator.logins["a0"], 2)
        self.assertEqual(simulator.logins["a1"], 1)
        self.assertEqual(simulator.doubles, [])
        length = yield redis.execute_command("XLEN", keys.mt_stream(second))
        self.assertEqual(int(length), 2)


class RefusedChangeTests(TestCase):
    """A running channel whose record turns bad stops, and says why."""

    timeout = 60

    @defer.inlineCallbacks
    def test_status_keeps_the_reason_after_the_stop(self):
        service, redis, _simulator, port, channel, _ = yield one_running_channel(self)

        yield redis.set(
            keys.channel_info(channel), record(channel, "a0", port, gatewayPort=0)
        )
        yield service.collection.reload_channel(channel)
        yield wait_for(lambda: service.collection.channel(channel) is None)
        yield service.stores.writer.flush()

        status = yield redis.hgetall(keys.status(channel))
        self.assertEqual(status["state"], "broken")
        self.assertEqual(status["error_field"], "gatewayPort")
        self.assertIn("gatewayPort", status["last_error"])

        # Mended: running again, and the status no longer names an error.
        yield redis.set(keys.channel_info(channel), record(channel, "a0", port))
        yield service.collection.reload_channel(channel)
        yield wait_for(lambda: service.collection.channel(channel) is not None)
        yield service.stores.writer.flush()
        status = yield redis.hgetall(keys.status(channel))
        self.assertEqual((status["error_field"], status["error_reason"]), ("", ""))


class ManualStopTests(TestCase):
    """An operator's stop survives a restart; a start brings the channel back."""

    timeout = 90

    @defer.inlineCallbacks
    def test_manual_stop_survives_restart_and_start_resumes(self):
        server, redis = yield start_redis(self)
        simulator, port = yield start_simulator(self, ["a0", "a1"])
        first, second = channel_ids(2)
        yield redis.set(keys.channel_info(first), record(first, "a0", port))
        yield redis.set(keys.channel_info(second), record(second, "a1", port))

        service = yield start_service(self, server, consumer_name="before")
        yield wait_for(lambda: len(simulator.logged_in()) == 2)
        yield send_many(redis, first, "m", 5)
        yield wait_for(
            lambda: answered_ids(redis, first).addCallback(lambda ids: len(ids) == 5)
        )
        index_keys = yield redis.execute_command("KEYS", keys.msgid("*"))

        yield service.collection.stop_channel(first)
        self.assertIsNone(service.collection.channel(first))
        self.assertFalse(simulator.logged_in("a0"))
        self.assertEqual((yield stopped_members(redis)), {first})
        self.assertFalse((yield redis.exists(keys.sequence(first))))
        self.assertFalse((yield redis.exists(keys.inflight(first))))
        self.assertTrue((yield redis.exists(keys.sequence(second))))
        # the Msg_Id index is kept so late reports still match
        for key in index_keys:
            self.assertTrue((yield redis.exists(key)))
        status = yield read_status(redis, first)
        self.assertEqual(status["state"], "stopped")
        self.assertEqual(status["stop_reason"], "stopped by an operator")

        # a restart without a manual stop reconnects the others only
        yield service.stopService()
        yield wait_for(lambda: not simulator.logged_in())
        queued = yield send_many(redis, first, "while-stopped", 3)
        service = yield start_service(self, server, consumer_name="after")
        yield wait_for(lambda: simulator.logged_in("a1"))
        self.assertIsNone(service.collection.channel(first))
        self.assertFalse(simulator.logged_in("a0"))

        # a start from another client, through cmppsvc:control
        yield wait_for(lambda: service.watcher.subscriptions > 0)
        receivers = yield publish_command(redis, "start", first)
        self.assertEqual(receivers, 1)
        yield wait_for(lambda: simulator.logged_in("a0"))
        self.assertEqual((yield stopped_members(redis)), set())
        yield wait_for(
            lambda: answered_ids(redis, first).addCallback(
                lambda ids: set(queued) <= ids
            )
        )

        # and a stop through the Python API of the process running it
        yield publish_command(redis, "stop", second)
        yield wait_for(lambda: service.collection.channel(second) is None)
        yield wait_for(lambda: not simulator.logged_in("a1"))
        statuses = {s["channel"]: s for s in service.collection.status()}
        self.assertEqual(statuses[second]["state"], "stopped")
        self.assertEqual(statuses[first]["owner"], service.owner)
        self.assertEqual(simulator.doubles, [])


class QuietRescanTests(TestCase):
    """A periodic rescan that finds nothing new logs nothing."""

    timeout = 60

    @defer.inlineCallbacks
    def test_channels_checked_is_logged_when_the_counts_change(self):
        service, redis, _simulator, _port, _good, (bad,) = yield one_running_channel(
            self, spare_ids=1
        )

        def checked_lines(events):
            return [e for e in events if "channels checked" in e["log_format"]]

        with capturedLogs() as events:
            yield service.collection.rescan()
            yield service.collection.rescan()
        self.assertEqual(checked_lines(events), [])

        yield redis.set(keys.channel_info(bad), b"{not json")
        with capturedLogs() as events:
            yield service.collection.rescan()
            yield service.collection.rescan()
        [line] = checked_lines(events)
        self.assertEqual((line["records"], line["broken"]), (2, 1))

    @defer.inlineCallbacks
    def test_a_command_for_a_channel_without_a_record_is_reported(self):
        (
            service,
            _redis,
            _simulator,
            _port,
            good,
            (missing,),
        ) = yield one_running_channel(self, spare_ids=1)

        with capturedLogs() as events:
            yield service.collection.handle_command(Command("stop", missing))
            yield service.collection.handle_command(Command("reload", good))
        warnings = [e for e in events if "without a record" in e["log_format"]]
        self.assertEqual(
            [(e["action"], e["channel"]) for e in warnings], [("stop", missing)]
        )
