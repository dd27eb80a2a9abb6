# -*- test-case-name: tests.test_runtime -*-
"""The `--demo` set-up: fixture channel records against the built-in simulator.

It loads a redis-cli script of `channel-info:<id>` records into Redis exactly
as they are, starts the ISMG simulator on a free 127.0.0.1 port with each
record's account and password, and rewrites only the records' gateway address
and port so that every channel connects to the simulator.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.logger import Logger

from cmppsvc.config import (
    parse_channel_record,
    parse_redis_cli_script,
    rewrite_record_gateway,
)
from cmppsvc.simulator.factory import SimulatorFactory

log = Logger(namespace="cmppsvc.demo")

LOOPBACK = "127.0.0.1"

#: Where the demo serves the HTTP API unless --http says otherwise: a fixed
#: loopback port, so that the README's curl lines work as written.
DEMO_HTTP = f"tcp:8399:interface={LOOPBACK}"


class DemoSetup(Service):
    """Loads the fixture and runs the simulator the demo channels dial.

    It is a service so that the simulator stops with the process.
    """

    name = "demo-simulator"

    def __init__(self, fixture_path: str, reactor: Any) -> None:
        self._fixture_path = fixture_path
        self._reactor = reactor
        self.simulator: SimulatorFactory | None = None
        self._port: Any = None

    @defer.inlineCallbacks
    def prepare(self, redis: Any):
        """Start the simulator, then load and rewrite the fixture records."""
        with open(self._fixture_path, "rb") as fixture:
            records = parse_redis_cli_script(fixture.read())

        accounts = {}
        for key, raw in records:
            channel_id = key.split(":", 1)[1]
            config = parse_channel_record(channel_id, raw)
            accounts[config.account] = config.password

        self.simulator = SimulatorFactory(accounts, self._reactor)
        endpoint = TCP4ServerEndpoint(self._reactor, 0, interface=LOOPBACK)
        self._port = yield endpoint.listen(self.simulator)
        port = self._port.getHost().port
        log.info(
            "ISMG simulator listening on {host}:{port} for {count} accounts",
            host=LOOPBACK,
            port=port,
            count=len(accounts),
        )

        for key, raw in records:
            yield redis.set(key, rewrite_record_gateway(raw, LOOPBACK, port))
        log.info(
            "loaded {count} channel records from {path}, gateway rewritten to "
            "{host}:{port}",
            count=len(records),
            path=self._fixture_path,
            host=LOOPBACK,
            port=port,
        )

    def stopService(self):
        """Stop listening."""
        Service.stopService(self)
        if self._port is not None:
            return self._port.stopListening()
        return None
