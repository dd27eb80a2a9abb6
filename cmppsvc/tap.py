# -*- test-case-name: tests.test_runtime -*-
"""`twistd cmppsvc`: command-line options and the service they build.

Under twistd a start that fails (the private Redis's port taken, redis-server
missing, ...) ends the process with a non-zero exit status instead of leaving
it running idle: see `ProcessCmppService`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.python import usage

from cmppsvc.events import MAXLEN
from cmppsvc.lease import DEFAULT_TTL
from cmppsvc.msgindex import TTL
from cmppsvc.mtentries import RELEASED_CONSUMER
from cmppsvc.redisconn import RedisAddress
from cmppsvc.reload import DEFAULT_RESCAN_INTERVAL
from cmppsvc.runtime import CmppService
from cmppsvc.writebehind import INTERVAL, MAX_BATCH

#: Exit status of a process whose service could not start, or lost the private
#: Redis it cannot go on without.
START_FAILED_STATUS = 1

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
            DEFAULT_TTL,
            "Seconds a channel's lease lasts without renewal (0.1 to 3600): when a "
            "process dies, another takes its channels over within this time; a "
            "process that cannot renew for two thirds of it stops the channel.",
            float,
        ],
        [
            "rescan-interval",
            None,
            DEFAULT_RESCAN_INTERVAL,
            "Seconds between two rescans of every channel-info record (the safety "
            "net behind change notifications); 0 turns the rescan off.",
            float,
        ],
        [
            "write-batch",
            None,
            MAX_BATCH,
            "Most Redis commands the write-behind queue sends in one batch (one "
            "script run; 1 to 100000). Larger batches cost fewer round trips under "
            "load and hold Redis a little longer per batch.",
            int,
        ],
        [
            "write-interval",
            None,
            INTERVAL,
            "Seconds the write-behind queue waits after the first queued command "
            "before sending a batch (0 to 10). 0: at the end of the reactor turn, "
            "the lowest latency; more groups writes at low rates.",
            float,
        ],
        [
            "msgid-ttl",
            None,
            TTL,
            "Seconds a Msg_Id index entry lives (60 to 2592000, default 72 hours): "
            "a status report arriving later than this after its submit is not "
            "matched to its message. Longer keeps more Redis memory.",
            float,
        ],
        [
            "events-maxlen",
            None,
            MAXLEN,
            "Approximate cap of the cmppsvc:events stream in entries (1000 to "
            "1000000000): older events are trimmed (XADD MAXLEN ~), so consumers "
            "must read faster than it fills.",
            int,
        ],
        [
            "http",
            None,
            None,
            "Serve the HTTP API (status, start/stop/reload, messages, /metrics) on "
            "this Twisted server endpoint, e.g. tcp:8080:interface=127.0.0.1. It has "
            "no authentication: keep it on loopback or behind a proxy that "
            "authenticates. Default: no HTTP (with --demo: 127.0.0.1:8399).",
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
        if not 1 <= self["write-batch"] <= 100_000:
            raise usage.UsageError("--write-batch: 1 to 100000 commands")
        if not 0 <= self["write-interval"] <= 10:
            raise usage.UsageError("--write-interval: 0 to 10 seconds")
        if not 60 <= self["msgid-ttl"] <= 30 * 86400:
            raise usage.UsageError("--msgid-ttl: 60 to 2592000 seconds")
        if not 1000 <= self["events-maxlen"] <= 1_000_000_000:
            raise usage.UsageError("--events-maxlen: 1000 to 1000000000 entries")
        if self["consumer"] == RELEASED_CONSUMER:
            raise usage.UsageError(
                f"--consumer: {RELEASED_CONSUMER} is where entries are given back "
                "for other processes to claim; choose another name"
            )
        if self["demo"]:
            from cmppsvc.demo import DEMO_HTTP

            self["http"] = self["http"] or DEMO_HTTP
            self["loopback-only"] = True
            self["fixture"] = self["fixture"] or default_fixture()
            if not os.path.exists(self["fixture"]):
                raise usage.UsageError(f"--fixture: {self['fixture']} does not exist")
        if self["http"]:
            check_endpoint(self["http"])


def check_endpoint(description: str) -> None:
    """UsageError unless `description` is a server endpoint Twisted knows."""
    from twisted.internet import reactor
    from twisted.internet.endpoints import serverFromString

    try:
        serverFromString(reactor, description)
    except (ValueError, TypeError, KeyError, OSError) as error:
        raise usage.UsageError(f"--http: {error}") from None


def end_process(
    reactor: Any, status: int, exit_process: Callable[[int], Any] = os._exit
) -> None:
    """Stop the reactor, so that twistd stops every service, then end the
    process with `status`.

    twistd offers no way to set its exit status (Twisted issues #11335 and
    #4762): it always ends with 0 after `reactor.stop()`. So the process ends
    from the reactor's "after shutdown" trigger, once the services have
    stopped and their log lines are written; twistd's own pid file, when there
    is one, is left behind, and twistd removes it as stale at the next start.
    """

    def exit_now() -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        exit_process(status)

    reactor.addSystemEventTrigger("after", "shutdown", exit_now)
    # A start can fail before twistd runs the reactor: stop it once it runs.
    reactor.callWhenRunning(reactor.stop)


class ProcessCmppService(CmppService):
    """A `CmppService` that is the whole process: when its start fails, the
    process ends with START_FAILED_STATUS (the failure itself is logged by
    `CmppService`). A start cancelled by a stop is no failure."""

    def __init__(
        self, *args: Any, end: Callable[[int], Any] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._end = end or (lambda status: end_process(self._clock, status))

    def startService(self) -> None:
        """Start, and end the process if the start fails."""
        super().startService()
        self.whenStarted().addErrback(self._end_after_failed_start)

    def _end_after_failed_start(self, failure: Any) -> None:
        if not failure.check(defer.CancelledError):
            self._end(START_FAILED_STATUS)

    def _private_redis_lost(self) -> None:
        """The process cannot go on without its Redis: end it."""
        super()._private_redis_lost()
        self._end(START_FAILED_STATUS)


def makeService(options: Options) -> CmppService:
    """Build the process service from parsed options."""
    from twisted.internet import reactor

    from cmppsvc.guard import loopback_only

    demo = None
    if options["demo"]:
        from cmppsvc.demo import DemoSetup

        demo = DemoSetup(options["fixture"], reactor)

    service = ProcessCmppService(
        options["redis_address"],
        reactor,
        redis_directory=options["redis-dir"],
        redis_port=options["redis-port"],
        consumer_name=options["consumer"],
        config_filter=loopback_only if options["loopback-only"] else None,
        before_load=demo.prepare if demo is not None else None,
        lease_ttl=options["lease-ttl"],
        rescan_interval=options["rescan-interval"],
        write_batch=options["write-batch"],
        write_interval=options["write-interval"],
        msgid_ttl=options["msgid-ttl"],
        events_maxlen=options["events-maxlen"],
        http_endpoint=options["http"],
    )
    if demo is not None:
        demo.setServiceParent(service)
    return service
