"""How exactly a channel keeps its configured rate, measured where the gateway sees it.

For each rate (default 100, 1,000 and 5,000 submits/s) a ``ChannelConnector`` sends
to a simulator on 127.0.0.1 for ``--seconds`` (default 10), its queue always full.
The simulator runs in a child process (this module with ``--serve``), so its reads
are not held up by the client's work, and records when each SUBMIT arrives (its
reactor's clock at the read); the client notes when the connector has written each
SUBMIT to its connection, just before the flush to the transport (both clocks are
``reactor.seconds()``, the same wall clock in both processes).  For both, the bench
prints the achieved rate over the measured span as a share of the configured one,
and the largest number of SUBMITs within any 100 ms; then how long the SUBMITs took
from the client's note to the simulator's read (one connection, in order), since
what bunches them on the way is what the gateway's figure adds to the client's.
The client keeps a bounded backlog queued (a window plus 100 ms of submits), topped
up as submits finish.  Targets: within 1% of the
rate, and no 100 ms above ``rate / 10 + 1``.

    .venv/bin/python -m bench.rate [--rates 100,1000,5000] [--seconds 10]
        [--window 16] [--version 20|30]

Bounded: ``rate * (seconds + 1)`` submits per rate at most, and each rate's run is
stopped after ``seconds + 10`` seconds whatever happens.  Connects to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import gc
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.task import deferLater, react
from twisted.python.failure import Failure

from bench.common import cpu_model
from cmppsvc.codec import Submit
from cmppsvc.connector import ChannelConnector
from cmppsvc.settings import ConnectionSettings
from cmppsvc.simulator import Behaviour, SimulatorFactory, SimulatorProtocol

ACCOUNT = "901234"
PASSWORD = "bench-secret"
WINDOW_SECONDS = 0.1


class _StampingProtocol(SimulatorProtocol):
    """The simulator's connection, noting the clock time each SUBMIT arrives."""

    def _submit(self, *arguments: object) -> None:
        self.gateway.arrivals.append(self.clock.seconds())
        super()._submit(*arguments)


class StampingSimulator(SimulatorFactory):
    """A simulator that keeps ``arrivals``: clock seconds of every SUBMIT."""

    def __init__(self, *arguments: object, **keywords: object) -> None:
        super().__init__(*arguments, **keywords)
        self.arrivals: list[float] = []

    def buildProtocol(self, addr: object) -> SimulatorProtocol:
        protocol = _StampingProtocol(self)
        protocol.factory = self
        return protocol


def largest_burst(times: list[float], span: float = WINDOW_SECONDS) -> int:
    """The most arrivals within any ``span`` seconds (half-open windows)."""
    largest = 0
    start = 0
    for end, arrival in enumerate(times):
        while arrival - times[start] >= span:
            start += 1
        largest = max(largest, end - start + 1)
    return largest


def message() -> Submit:
    """One short message to one number, asking for a status report."""
    return Submit(
        msg_src=ACCOUNT,
        src_id="10690001",
        dest_terminal_ids=("13800138000",),
        msg_fmt=8,
        msg_content="rate bench".encode("utf-16-be"),
    )


@inlineCallbacks
def serve(reactor_: object, port_file: str, arrivals_file: str) -> Deferred:
    """The child: a stamping simulator until SIGTERM (or 10 minutes), then write
    the arrival times, one per line."""
    simulator = StampingSimulator(
        {ACCOUNT: PASSWORD}, reactor, Behaviour(report_delay=0.1)
    )
    port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(simulator)
    # As twistd cmppsim does: start-up objects out of the collector's view.
    if hasattr(gc, "freeze"):  # CPython's; PyPy's collector has none
        gc.freeze()
    finished: Deferred = Deferred()
    reactor.addSystemEventTrigger("before", "shutdown", finished.callback, None)
    Path(port_file).write_text(str(port.getHost().port))
    reactor.callLater(600, reactor.stop)
    yield finished
    Path(arrivals_file).write_text("".join(f"{t!r}\n" for t in simulator.arrivals))


def start_child(directory: Path) -> tuple[subprocess.Popen, int]:
    """Start the simulator child on a free 127.0.0.1 port; return it and the port."""
    port_file = directory / "port"
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.rate", "--serve", str(port_file),
         str(directory / "arrivals")],
        cwd=Path(__file__).resolve().parent.parent,
    )  # fmt: skip
    deadline = time.monotonic() + 15
    while not (port_file.exists() and port_file.read_text().strip()):
        if child.poll() is not None or time.monotonic() > deadline:
            child.kill()
            raise SystemExit("bench.rate: the simulator child did not start")
        time.sleep(0.05)
    return child, int(port_file.read_text())


def stop_child(child: subprocess.Popen, directory: Path) -> list[float]:
    """Stop the child; return the arrival times it recorded."""
    child.terminate()
    try:
        child.wait(15)
    except subprocess.TimeoutExpired:
        child.kill()
        raise SystemExit("bench.rate: the simulator child did not stop") from None
    return [float(line) for line in (directory / "arrivals").read_text().split()]


def figures(times: list[float], seconds: float) -> tuple[float, int]:
    """Achieved per second over ``seconds`` from the first time, and the largest
    number within any 100 ms of that span."""
    first = times[0] if times else 0.0
    measured = [t for t in times if t - first < seconds]
    return len(measured) / seconds, largest_burst(measured)


@inlineCallbacks
def measure(rate: float, arguments: argparse.Namespace) -> Deferred:
    """Run one rate; return the figures at the client and at the gateway, and
    the count of submits answered."""
    directory = Path(tempfile.mkdtemp(prefix="bench-rate-"))
    child, port = start_child(directory)
    try:
        answered, handed = yield send(rate, port, arguments)
    finally:
        arrivals = stop_child(child, directory)

    return (
        figures(handed, arguments.seconds),
        figures(arrivals, arguments.seconds),
        answered,
        transit(handed, arrivals),
    )


def transit(handed: list[float], arrivals: list[float]) -> tuple[float, ...] | None:
    """Milliseconds from the client's note to the simulator's read: the median,
    99th and 99.9th percentiles and the largest; None when the counts differ (a
    SUBMIT sent twice, or lost)."""
    if not handed or len(handed) != len(arrivals):
        return None
    delays = sorted(read - noted for noted, read in zip(handed, arrivals))
    last = len(delays) - 1
    return tuple(
        delays[min(last, int(len(delays) * share))] * 1000
        for share in (0.5, 0.99, 0.999, 1.0)
    )


@inlineCallbacks
def send(rate: float, port: int, arguments: argparse.Namespace) -> Deferred:
    """Keep a connector's queue full for ``seconds`` (bounded); return the submits
    answered."""
    settings = ConnectionSettings(
        channel_id="rate-bench",
        account=ACCOUNT,
        password=PASSWORD,
        host="127.0.0.1",
        port=port,
        version=arguments.version,
        window=arguments.window,
        rate=rate,
    )
    seqs = iter(range(1, 2**31))
    connector = ChannelConnector(
        settings, reactor, lambda: next(seqs), lambda deliver: None
    )
    handed = watch_sends(connector)
    connector.startService()

    # The queue never runs dry: as the channel service does (it reads the MT stream
    # in batches), a bounded backlog is kept, one new submit for each one finished,
    # up to what the measured span can use plus a second.  (Queueing all of them
    # at once would make the garbage collector stall the client for milliseconds.)
    total = int(rate * (arguments.seconds + 1)) + arguments.window
    backlog = min(total, arguments.window + int(rate * 0.1) + 1)
    answered: list[object] = []
    queued = 0

    def finished(result: object) -> None:
        if not isinstance(result, Failure):
            answered.append(result)
        if queued < total and connector.running:
            queue_one()

    def queue_one() -> None:
        nonlocal queued
        queued += 1
        connector.submit(message()).addBoth(finished)

    for _ in range(backlog):
        queue_one()

    # From the first answer, the span plus a little; never past the hard bound.
    deadline = reactor.seconds() + arguments.seconds + 10
    while not answered and reactor.seconds() < deadline:
        yield deferLater(reactor, 0.01, lambda: None)
    end = min(deadline, reactor.seconds() + arguments.seconds + 0.5)
    while reactor.seconds() < end and len(answered) < total:
        yield deferLater(reactor, 0.05, lambda: None)

    yield connector.stopService()
    return len(answered), handed


def watch_sends(connector: ChannelConnector) -> list[float]:
    """Note the clock time of every SUBMIT the connector hands to a transport."""
    handed: list[float] = []
    send = connector._send

    def noting(protocol: object, count: int, now: float) -> int:
        unused = send(protocol, count, now)
        handed.extend([reactor.seconds()] * (count - unused))
        return unused

    connector._send = noting
    return handed


@inlineCallbacks
def main(reactor_: object, arguments: argparse.Namespace) -> Deferred:
    print(
        f"bench.rate: Python {platform.python_version()}, CPU {cpu_model()}, "
        f"CMPP 0x{arguments.version:02x}, window {arguments.window}, "
        f"{arguments.seconds:g} s per rate, simulator in a child process on "
        "127.0.0.1; client = written to the connection, gateway = read by the simulator"
    )
    print(f"{'rate/s':>8} {'where':>8} {'achieved/s':>11} {'ratio':>7} "
          f"{'max/100ms':>10} {'limit':>6}  verdict")  # fmt: skip
    failed = False
    for rate in arguments.rates:
        client, gateway, answered, delays = yield measure(rate, arguments)
        limit = rate / 10 + 1
        for where, (achieved, burst) in (("client", client), ("gateway", gateway)):
            ratio = achieved / rate
            good = abs(ratio - 1) <= 0.01 and burst <= limit
            failed = failed or not good
            print(
                f"{rate:>8g} {where:>8} {achieved:>11.1f} {ratio:>7.2%} "
                f"{burst:>10d} {limit:>6g}  {'ok' if good else 'MISSED'}"
            )
        print(f"{'':>8} ({answered} answered in all)")
        if delays is not None:
            print(
                f"{'':>8} client to gateway: median {delays[0]:.2f} ms, 99% "
                f"{delays[1]:.2f} ms, 99.9% {delays[2]:.2f} ms, max {delays[3]:.2f} ms"
            )
    if failed:
        raise SystemExit(1)


def parse(argv: list[str]) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rates",
        type=lambda text: [float(part) for part in text.split(",")],
        default=[100.0, 1000.0, 5000.0],
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument(
        "--version", type=lambda text: int(text, 16), default=0x20, help="20 or 30"
    )
    arguments = parser.parse_args(argv)
    if not 0 < arguments.seconds <= 120:
        parser.error("--seconds must be above 0 and at most 120")
    if any(not 0 < rate <= 20000 for rate in arguments.rates):
        parser.error("every rate must be above 0 and at most 20000")
    return arguments


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        react(serve, sys.argv[2:4])
    else:
        react(main, [parse(sys.argv[1:])])
