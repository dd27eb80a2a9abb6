"""Scale benchmark: many channels in one process, and a restart over a big index.

Part one: ``--channels`` channel records (distinct accounts) in a private Redis, all
pointing at one ``twist cmppsim`` child that knows every account; one ``CmppService``
in this process loads and connects them.  Printed: start-up time (service start to
every channel logged in), RSS of this process, and its idle CPU (percent of one core
over ``--idle-seconds`` with every channel connected and nothing to send).

Part two: ``--msgids`` Msg_Ids awaiting their status reports are written into the
Msg_Id index (through the product's ``MsgIdIndex``, as the service writes them);
then a new ``CmppService`` starts over that Redis, as after a restart.  Printed:
restart-to-ready time (service start to the channel logged in and an old Msg_Id
looked up in the index), and Redis memory.

    .venv/bin/python -m bench.scale [--channels 1000] [--idle-seconds 5]
        [--msgids 100000] [--seconds 60]

Bounded in count and time; everything on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import txredisapi
from twisted.internet import defer, task

from bench.common import (
    Simulator,
    channel_record,
    conditions,
    process_cpu,
    profiled,
    react,
    rss_megabytes,
    start_service,
)
from cmppsvc.localredis import LocalRedis
from cmppsvc.msgindex import MsgIdIndex
from cmppsvc.owner import READY
from cmppsvc.runtime import CmppService
from cmppsvc.writebehind import WriteBehind

PASSWORD = "bench-secret"
FIRST_MSG_ID = 0xC1BDF08003E90000


def channels(count: int) -> list[tuple[str, str]]:
    """(channel id, account) pairs: 16-digit ids, 6-digit accounts."""
    return [(f"9{index:015d}", f"{200000 + index:06d}") for index in range(count)]


def ready_count(service: CmppService) -> int:
    """How many channels of the service have a logged-in connection."""
    collection = service.collection
    if collection is None:
        return 0
    ready = 0
    for channel in collection:
        connector = getattr(channel, "connector", None)
        if connector is not None and connector.status()["state"] == READY:
            ready += 1
    return ready


@defer.inlineCallbacks
def wait_until(reactor, condition, seconds: float, step: float = 0.01):
    """Poll ``condition()`` until true or ``seconds`` pass; fires with its truth."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        yield task.deferLater(reactor, step, lambda: None)
    return True


@defer.inlineCallbacks
def many_channels(reactor, arguments) -> Any:
    """Part one: start-up time, RSS and idle CPU with ``--channels`` channels."""
    pairs = channels(arguments.channels)
    local = LocalRedis(None, reactor=reactor)
    yield local.start()
    service = None
    try:
        with Simulator([(account, PASSWORD) for _, account in pairs]) as simulator:
            redis = yield txredisapi.Connection("127.0.0.1", local.port)
            for first in range(0, len(pairs), 500):
                yield defer.gatherResults(
                    [
                        redis.set(
                            f"channel-info:{channel_id}",
                            channel_record(
                                channel_id, account, PASSWORD, simulator.port, rate=100
                            ),
                        )
                        for channel_id, account in pairs[first : first + 500]
                    ]
                )
            rss_before = rss_megabytes()
            started = time.monotonic()
            service = start_service(reactor, local)
            yield service.whenStarted()
            loaded = time.monotonic() - started
            all_ready = yield wait_until(
                reactor,
                lambda: ready_count(service) >= len(pairs),
                arguments.seconds,
                step=0.05,
            )
            ready_seconds = time.monotonic() - started
            ready = ready_count(service)

            yield task.deferLater(reactor, 0.5, lambda: None)
            cpu_before, simulator_before = process_cpu(), simulator.cpu()
            with profiled(arguments.profile_idle):
                yield task.deferLater(reactor, arguments.idle_seconds, lambda: None)
            idle_cpu = process_cpu() - cpu_before
            simulator_idle = simulator.cpu() - simulator_before
            rss = rss_megabytes()
            simulator_rss = rss_megabytes(simulator.child.pid)

            stopping = time.monotonic()
            yield service.stopService()
            stop_seconds = time.monotonic() - stopping
            service = None
            yield redis.disconnect()
    finally:
        if service is not None and service.running:
            yield service.stopService()
        yield local.stop()
    return {
        "channels": len(pairs),
        "ready": ready,
        "all_ready": all_ready,
        "loaded_seconds": loaded,
        "ready_seconds": ready_seconds,
        "rss": rss,
        "rss_before": rss_before,
        "idle_cpu_percent": idle_cpu / arguments.idle_seconds * 100,
        "simulator_idle_percent": simulator_idle / arguments.idle_seconds * 100,
        "simulator_rss": simulator_rss,
        "stop_seconds": stop_seconds,
    }


@defer.inlineCallbacks
def big_index(reactor, arguments) -> Any:
    """Part two: restart-to-ready with ``--msgids`` Msg_Ids in the index."""
    channel_id, account = "7377309771234304", "100002"
    local = LocalRedis(None, reactor=reactor)
    yield local.start()
    service = None
    try:
        with Simulator([(account, PASSWORD)]) as simulator:
            redis = yield txredisapi.Connection(
                "127.0.0.1", local.port, convertNumbers=False
            )
            yield redis.set(
                f"channel-info:{channel_id}",
                channel_record(channel_id, account, PASSWORD, simulator.port),
            )

            # What a first run leaves behind: Msg_Ids answered, reports due.
            writing = time.monotonic()
            writer = WriteBehind(redis, reactor)
            index = MsgIdIndex(writer, redis, reactor)
            now = time.time()
            for number in range(arguments.msgids):
                index.put(
                    FIRST_MSG_ID + number,
                    {
                        "id": f"m{number}",
                        "channel": channel_id,
                        "to": f"138{number:08d}",
                        "segment": 1,
                        "segments": 1,
                        "submitted": now,
                        "answered": now,
                    },
                )
                if number % 5000 == 4999:
                    yield writer.flush()
            yield writer.stop()
            write_seconds = time.monotonic() - writing
            memory = yield redis.execute_command("INFO", "memory")
            used_mb = int(memory.split("used_memory:", 1)[1].split()[0]) / 2**20

            started = time.monotonic()
            service = start_service(reactor, local)
            yield service.whenStarted()
            ready = yield wait_until(
                reactor, lambda: ready_count(service) >= 1, arguments.seconds
            )
            entry = yield service.stores.msgindex.lookup(
                FIRST_MSG_ID + arguments.msgids // 2
            )
            ready_seconds = time.monotonic() - started
            yield service.stopService()
            service = None
            yield redis.disconnect()
    finally:
        if service is not None and service.running:
            yield service.stopService()
        yield local.stop()
    return {
        "msgids": arguments.msgids,
        "write_seconds": write_seconds,
        "redis_mb": used_mb,
        "ready": ready and entry is not None,
        "ready_seconds": ready_seconds,
    }


@defer.inlineCallbacks
def run(reactor, arguments) -> Any:
    """Both parts; prints as it goes."""
    print("Scale bench: many channels in one CmppService; restart over a big index")
    print(f"  {conditions()}")
    if arguments.channels:
        figures = yield many_channels(reactor, arguments)
        print(
            f"  {figures['channels']:,} channels: {figures['ready']:,} logged in "
            f"{figures['ready_seconds']:.2f} s after start (records loaded in "
            f"{figures['loaded_seconds']:.2f} s)"
            + ("" if figures["all_ready"] else "  NOT ALL READY")
        )
        print(
            f"  RSS {figures['rss']:.0f} MB (before start {figures['rss_before']:.0f}"
            f" MB), idle CPU {figures['idle_cpu_percent']:.1f}% of a core over "
            f"{arguments.idle_seconds:g} s; simulator {figures['simulator_rss']:.0f} "
            f"MB, {figures['simulator_idle_percent']:.1f}%; graceful stop "
            f"{figures['stop_seconds']:.2f} s"
        )
    if arguments.msgids:
        figures = yield big_index(reactor, arguments)
        print(
            f"  restart with {figures['msgids']:,} Msg_Ids awaiting reports "
            f"(Redis {figures['redis_mb']:.0f} MB, written in "
            f"{figures['write_seconds']:.1f} s): ready and matching in "
            f"{figures['ready_seconds']:.2f} s"
            + ("" if figures["ready"] else "  NOT READY")
        )


def parser() -> argparse.ArgumentParser:
    """The command-line options."""
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--channels", type=int, default=1000)
    options.add_argument("--idle-seconds", type=float, default=5.0)
    options.add_argument("--msgids", type=int, default=100_000)
    options.add_argument("--seconds", type=float, default=60.0, help="per wait")
    options.add_argument(
        "--profile-idle", help="write a pyinstrument HTML profile of the idle time"
    )
    return options


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print its figures."""
    arguments = parser().parse_args(argv)
    react(lambda reactor: run(reactor, arguments))


if __name__ == "__main__":
    main()
