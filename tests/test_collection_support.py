# Shared helpers for the collection, reload, lease and multi-process tests.
"""Channel records made from the fixture, a login-counting simulator, and
services started against a private Redis.

No tests here: the helpers are imported by tests/test_collection*.py,
tests/test_reload*.py, tests/test_multiprocess*.py and
tests/test_redis_outage*.py.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ServerEndpoint

from cmppsvc import keys
from cmppsvc.guard import loopback_only
from cmppsvc.redisconn import RedisAddress
from cmppsvc.runtime import CmppService
from cmppsvc.simulator.factory import SimulatorFactory
from tests.endtoend import fixture_records, read_events, send_mt, wait_for
from tests.redisserver import fast_reconnect, start_redis

PASSWORD = "123"


def record(channel_id: str, account: str, port: int, **changes: Any) -> bytes:
    """A channel record in the fixture's format, pointing at 127.0.0.1:port."""
    _key, raw = fixture_records()[0]
    data = json.loads(raw)
    data.update(
        id=channel_id,
        account=account,
        gatewayIp="127.0.0.1",
        gatewayPort=port,
        channelIp="127.0.0.1",
        channelPort=port,
    )
    data.update(changes)
    return json.dumps(data, ensure_ascii=False).encode("utf-8")


def channel_ids(count: int) -> list[str]:
    """Distinct channel ids, like the fixture's."""
    return [f"90000000000{number:05d}" for number in range(count)]


class CountingSimulator(SimulatorFactory):
    """The simulator, counting logins per account and noting every login of
    an account that already has a live logged-in connection."""

    def __init__(self, accounts: dict[str, str]) -> None:
        super().__init__(accounts, reactor, record_submits=True)
        self.behaviour.report_delay = 0.02
        self.logins: Counter[str] = Counter()
        self.doubles: list[str] = []

    def _logged_in(self, protocol: Any) -> None:
        self.logins[protocol.account] += 1
        if len(self.logged_in(protocol.account)) > 1:
            self.doubles.append(protocol.account)
        super()._logged_in(protocol)


@defer.inlineCallbacks
def start_simulator(testcase, accounts: list[str]):
    """A CountingSimulator on 127.0.0.1; fires with (simulator, port)."""
    simulator = CountingSimulator(dict.fromkeys(accounts, PASSWORD))
    port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(simulator)
    testcase.addCleanup(port.stopListening)

    def drop_connections():
        for connection in list(simulator.connections):
            connection.transport.abortConnection()

    testcase.addCleanup(drop_connections)
    return simulator, port.getHost().port


@defer.inlineCallbacks
def start_service(testcase, server, consumer_name: str = "one", **options):
    """A CmppService on the test Redis (loopback only); stopped at cleanup."""
    options.setdefault("lease_ttl", 2.0)
    service = CmppService(
        RedisAddress.from_url(server.url),
        reactor,
        consumer_name=consumer_name,
        config_filter=loopback_only,
        **options,
    )
    service.startService()

    def stop():
        if service.running:
            return service.stopService()
        return None

    testcase.addCleanup(stop)
    yield service.whenStarted()
    fast_reconnect(service.redis)
    return service


@defer.inlineCallbacks
def one_running_channel(testcase, spare_ids: int = 0):
    """A private Redis, a simulator with account "a0", one channel record for
    it and a service (no periodic rescan) logged in to it. Fires with
    (service, redis, simulator, port, channel id, spare unused channel ids)."""
    server, redis = yield start_redis(testcase)
    simulator, port = yield start_simulator(testcase, ["a0"])
    channel_id, *spare = channel_ids(1 + spare_ids)
    yield redis.set(keys.channel_info(channel_id), record(channel_id, "a0", port))
    service = yield start_service(testcase, server, rescan_interval=60.0)
    yield wait_for(lambda: simulator.logged_in("a0"))
    return service, redis, simulator, port, channel_id, spare


@defer.inlineCallbacks
def answered_ids(redis: Any, channel_id: str | None = None):
    """Message ids with an accepted submit event (of one channel or all)."""
    events = yield read_events(redis)
    return {
        event["id"]
        for event in events
        if event["type"] == "submit"
        and event.get("outcome") == "ok"
        and channel_id in (None, event["channel"])
    }


@defer.inlineCallbacks
def send_many(redis: Any, channel_id: str, prefix: str, count: int):
    """XADD `count` messages with ids prefix-0 .. prefix-(count-1)."""
    for number in range(count):
        yield send_mt(
            redis, channel_id, to="13800000000", text="hello", id=f"{prefix}-{number}"
        )
    return [f"{prefix}-{number}" for number in range(count)]


def stopped_members(redis: Any) -> defer.Deferred:
    """The ids in cmppsvc:stopped, as a set of text."""
    return redis.execute_command("SMEMBERS", keys.STOPPED).addCallback(
        lambda members: {
            m.decode() if isinstance(m, bytes) else str(m) for m in members or ()
        }
    )
