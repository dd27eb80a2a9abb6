"""`twistd cmppsvc`: command-line options and the service they build."""

from __future__ import annotations

import os
from pathlib import Path

from twisted.python import usage

from cmppsvc.redisconn import RedisAddress
from cmppsvc.runtime import CmppService

CHECKOUT = Path(__file__).resolve().parent.parent
SHARED_FIXTURE = CHECKOUT.parent / "shared" / "fixtures" / "channel-info.redis"
BUNDLED_FIXTURE = CHECKOUT / "tests" / "fixtures" / "channel-info.redis"


def default_fixture() -> str:
    """The team's shared channel records when present, else the bundled copy."""
    if SHARED_FIXTURE.exists():
        return str(SHARED_FIXTURE)
    return str(BUNDLED_FIXTURE)


class Options(usage.Options):
    """Options of `twistd cmppsvc`."""

    synopsis = "[--redis URL] [--demo] [options]"
    longdesc = (
        "Runs one CMPP client channel per channel-info:<id> record in Redis. "
        "Without --redis a private redis-server is started, with its data under "
        "--redis-dir. --demo also loads the fixture channel records, starts the "
        "ISMG simulator on 127.0.0.1 and points the channels at it."
    )
    optParameters = [
        [
            "redis",
            None,
            None,
            "Redis holding the channel records: redis://[:PASSWORD@]HOST:PORT/DB, "
            "unix:///PATH?db=N or redis-sentinel://HOST:PORT[,HOST:PORT]/SERVICE/DB. "
            "Without it a private redis-server is started.",
        ],
        [
            "redis-dir",
            None,
            "cmppsvc-redis",
            "Data directory of the private redis-server (without --redis).",
        ],
        [
            "redis-port",
            None,
            6399,
            "Port of the private redis-server on 127.0.0.1 (without --redis).",
            int,
        ],
        [
            "consumer",
            None,
            None,
            "This process's consumer name in the MT streams' group; keep it stable "
            "across restarts (default: the host name).",
        ],
        [
            "lease-ttl",
            None,
            15.0,
            "Seconds a channel's lease lasts without renewal: when a process dies, "
            "another takes its channels over within this time.",
            float,
        ],
        [
            "rescan-interval",
            None,
            30.0,
            "Seconds between two rescans of every channel-info record (the safety "
            "net behind change notifications).",
            float,
        ],
        [
            "fixture",
            None,
            None,
            "With --demo: the redis-cli script of channel records to load "
            "(default: ../shared/fixtures/channel-info.redis or the bundled copy).",
        ],
    ]
    optFlags = [
        [
            "demo",
            None,
            "Load the fixture channel records and run them against the built-in "
            "ISMG simulator on 127.0.0.1 (implies --loopback-only).",
        ],
        [
            "loopback-only",
            None,
            "Refuse to connect any channel whose gateway is not a loopback address.",
        ],
    ]

    def postOptions(self) -> None:
        if self["redis"]:
            try:
                self["redis_address"] = RedisAddress.from_url(self["redis"])
            except ValueError as error:
                raise usage.UsageError(f"--redis: {error}") from None
        else:
            self["redis_address"] = None
        if not 0.1 <= self["lease-ttl"] <= 3600:
            raise usage.UsageError("--lease-ttl: between 0.1 and 3600 seconds")
        if not 0 <= self["rescan-interval"] <= 86400:
            raise usage.UsageError("--rescan-interval: 0 (off) to 86400 seconds")
        if self["demo"]:
            self["loopback-only"] = True
            self["fixture"] = self["fixture"] or default_fixture()
            if not os.path.exists(self["fixture"]):
                raise usage.UsageError(f"--fixture: {self['fixture']} does not exist")


def makeService(options: Options) -> CmppService:
    """Build the process service from parsed options."""
    from twisted.internet import reactor

    from cmppsvc.guard import loopback_only

    demo = None
    if options["demo"]:
        from cmppsvc.demo import DemoSetup

        demo = DemoSetup(options["fixture"], reactor)

    service = CmppService(
        options["redis_address"],
        reactor,
        redis_directory=options["redis-dir"],
        redis_port=options["redis-port"],
        consumer_name=options["consumer"],
        config_filter=loopback_only if options["loopback-only"] else None,
        before_load=demo.prepare if demo is not None else None,
        lease_ttl=options["lease-ttl"],
        rescan_interval=options["rescan-interval"],
    )
    if demo is not None:
        demo.setServiceParent(service)
    return service
