# Shared helper: the whole service against a real Redis and the simulator.
"""Run cmppsvc end to end inside a trial test.

`start_platform(testcase)` starts a private redis-server, the ISMG simulator on
127.0.0.1, loads the fixture channel records with their gateway rewritten to
the simulator, and starts a `CmppService` with `--loopback-only` semantics.
Everything is stopped when the test ends. `wait_for` polls a condition on the
real reactor in short steps, bounded in time, so no test sleeps blindly.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import attrs
from twisted.internet import defer, reactor, task
from twisted.internet.endpoints import TCP4ServerEndpoint

from cmppsvc import keys
from cmppsvc.config import (
    parse_channel_record,
    parse_redis_cli_script,
    rewrite_record_gateway,
)
from cmppsvc.guard import loopback_only
from cmppsvc.redisconn import RedisAddress
from cmppsvc.runtime import CmppService
from cmppsvc.simulator.factory import SimulatorFactory
from tests.redisserver import start_redis

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "channel-info.redis")
FIXTURE_CHANNELS = ("7377309771234304", "7645731233987584")


@attrs.define
class Platform:
    """What a running end-to-end set-up consists of."""

    server: Any
    redis: Any
    simulator: SimulatorFactory
    simulator_port: int
    service: CmppService | None = None


def fixture_records() -> list[tuple[str, bytes]]:
    """The fixture's (key, raw JSON) pairs, exactly as the file holds them."""
    with open(FIXTURE, "rb") as fixture:
        return parse_redis_cli_script(fixture.read())


@defer.inlineCallbacks
def start_platform(
    testcase, start_service: bool = True, records: list | None = None, **options
):
    """Redis, the simulator and (optionally) the service; all cleaned up."""
    server, redis = yield start_redis(testcase)
    records = fixture_records() if records is None else records

    accounts = {}
    for key, raw in records:
        config = parse_channel_record(key.split(":", 1)[1], raw)
        accounts[config.account] = config.password
    simulator = SimulatorFactory(accounts, reactor, record_submits=True)
    simulator.behaviour.report_delay = options.pop("report_delay", 0.05)
    port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(simulator)
    testcase.addCleanup(port.stopListening)
    simulator_port = port.getHost().port

    for key, raw in records:
        yield redis.set(key, rewrite_record_gateway(raw, "127.0.0.1", simulator_port))

    platform = Platform(server, redis, simulator, simulator_port)
    if start_service:
        yield start_service_on(testcase, platform, **options)
    return platform


@defer.inlineCallbacks
def start_service_on(testcase, platform: Platform, **options):
    """Start a CmppService against the platform's Redis; stopped at cleanup."""
    service = CmppService(
        RedisAddress.from_url(platform.server.url),
        reactor,
        consumer_name=options.pop("consumer_name", "test-consumer"),
        config_filter=loopback_only,
        **options,
    )
    service.startService()
    testcase.addCleanup(_stop_if_running, service)
    yield service.whenStarted()
    platform.service = service
    return service


def _stop_if_running(service: CmppService):
    if service.running:
        return service.stopService()
    return None


@defer.inlineCallbacks
def wait_for(
    condition: Callable[[], Any], timeout: float = 20.0, step: float = 0.02
) -> Any:
    """Poll `condition` (plain or Deferred-returning) until it is truthy."""
    deadline = reactor.seconds() + timeout
    while True:
        value = yield defer.maybeDeferred(condition)
        if value:
            return value
        if reactor.seconds() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        yield task.deferLater(reactor, step, lambda: None)


@defer.inlineCallbacks
def read_events(redis: Any) -> Any:
    """Every entry of the events stream as a list of dicts of text."""
    entries = yield redis.execute_command("XRANGE", keys.EVENTS, "-", "+")
    events = []
    for _entry_id, flat in entries or []:
        pairs = [
            value.decode() if isinstance(value, bytes) else str(value) for value in flat
        ]
        events.append(dict(zip(pairs[::2], pairs[1::2])))
    return events


def send_mt(redis: Any, channel_id: str, **fields: str) -> defer.Deferred:
    """XADD one MT entry for a channel."""
    arguments: list[Any] = ["XADD", keys.mt_stream(channel_id), "*"]
    for name, value in fields.items():
        arguments += [name, value]
    return redis.execute_command(*arguments)
