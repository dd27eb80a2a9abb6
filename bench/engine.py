"""Engine benchmark: the client connector alone (no Redis) against the simulator.

One ``ChannelConnector`` with one connection, in this process, sends SUBMITs (each
asking for a status report) to ``twist cmppsim`` in a child process over loopback,
keeping four submits per window slot queued as the service does, through
``submit_with_callbacks`` (the connector's Deferred-free path).  For each CMPP
version and window it prints submits/s, reports/s, p50/p99 submit->response latency
and the CPU seconds per 1,000 messages of each process: the best of ``--repeat``
runs, because this machine is shared and a run can lose a core to a neighbour.

    .venv/bin/python -m bench.engine [--count 100000] [--seconds 60]
        [--windows 16,32] [--versions 20,30] [--report-delay 0.05] [--repeat 3]
        [--deferreds]
        [--profile FILE.html] [--profile-simulator FILE.txt]

Bounded in count and time; connects to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import time
from typing import Any

from twisted.internet import defer
from twisted.internet.endpoints import TCP4ClientEndpoint

from bench.common import (
    Simulator,
    conditions,
    percentile,
    process_cpu,
    profiled,
    react,
)
from cmppsvc.codec import Submit
from cmppsvc.connector import ChannelConnector
from cmppsvc.owner import READY
from cmppsvc.settings import ConnectionSettings

ACCOUNT = "100002"
PASSWORD = "bench-secret"

#: Submits kept waiting per window slot, as the service's outbound flow does.
QUEUED_PER_SLOT = 4


def submits(count: int) -> list[Submit]:
    """Distinct one-destination UCS2 SUBMITs asking for a report."""
    return [
        Submit(
            registered_delivery=1,
            service_id="MXX0001",
            msg_src=ACCOUNT,
            src_id="10658012",
            dest_terminal_ids=(f"138{index:08d}",),
            msg_content=f"您的验证码是{index:06d}".encode("utf-16-be"),
        )
        for index in range(count)
    ]


def sequence_numbers():
    """A synchronous in-memory Sequence_Id source wrapping 0xFFFFFFFF -> 1."""
    counter = itertools.count(1)

    def next_seq() -> int:
        return (next(counter) - 1) % 0xFFFFFFFF + 1

    return next_seq


class Run:
    """One measured run: feeds the connector, counts answers and reports."""

    def __init__(
        self, reactor: Any, port: int, version: int, window: int, count: int
    ) -> None:
        self.reactor = reactor
        self.count = count
        self.pdus = submits(count)
        self.next_index = 0
        self.responses = 0
        self.refused = 0
        self.failures = 0
        self.reports = 0
        self.latencies: list[float] = []
        self.in_flight: dict[int, int] = {}
        self.started = self.last_response = self.last_report = 0.0
        self.ready: defer.Deferred = defer.Deferred()
        self.done: defer.Deferred = defer.Deferred()
        settings = ConnectionSettings(
            channel_id="bench",
            account=ACCOUNT,
            password=PASSWORD,
            host="127.0.0.1",
            port=port,
            version=version,
            window=window,
            rate=1_000_000,
        )
        self.connector = ChannelConnector(
            settings,
            reactor,
            sequence_numbers(),
            self.deliver_received,
            lambda settings: TCP4ClientEndpoint(
                reactor, settings.host, settings.port, timeout=10
            ),
            self.state_changed,
        )
        self.queue_limit = window * QUEUED_PER_SLOT
        self.with_deferreds = False

    def state_changed(self, state: str, details: dict) -> None:
        if state == READY and not self.ready.called:
            self.ready.callback(None)

    def deliver_received(self, pdu: Any) -> None:
        if pdu.report is not None:
            self.reports += 1
            self.last_report = time.perf_counter()
            self.check_done()

    def answered(self, outcome: Any) -> None:
        self.responses += 1
        if outcome.result:
            self.refused += 1
        self.in_flight.pop(outcome.seq, None)
        self.latencies.append(outcome.answered_at - outcome.sent_at)
        self.last_response = time.perf_counter()
        self.feed(1)
        self.check_done()

    def failed(self, error: Any) -> None:
        self.failures += 1
        self.feed(1)
        self.check_done()

    def seq_assigned(self, seq: int) -> None:
        self.in_flight[seq] = self.next_index

    def feed(self, count: int) -> None:
        pdus, connector = self.pdus, self.connector
        for _ in range(count):
            if self.next_index >= self.count:
                return
            pdu = pdus[self.next_index]
            self.next_index += 1
            if self.with_deferreds:
                connector.submit(pdu, self.seq_assigned).addCallbacks(
                    self.answered, lambda failure: self.failed(failure.value)
                )
            else:
                connector.submit_with_callbacks(
                    pdu, self.answered, self.failed, self.seq_assigned
                )

    def check_done(self) -> None:
        answered = self.responses + self.failures
        if (
            answered >= self.count
            and self.reports >= self.responses - self.refused
            and not self.done.called
        ):
            self.done.callback(None)


@defer.inlineCallbacks
def measure(reactor, simulator: Simulator, version: int, window: int, arguments):
    """Connect, send ``count`` submits, wait for every report; return the figures."""
    run = Run(reactor, simulator.port, version, window, arguments.count)
    run.with_deferreds = arguments.deferreds
    # The prebuilt PDUs are the bench's input: keep the collector off them.
    gc.collect()
    if hasattr(gc, "freeze"):  # CPython's; PyPy's collector has none
        gc.freeze()
    run.connector.startService()
    yield run.ready.addTimeout(15, reactor)

    deadline = reactor.callLater(arguments.seconds, run.done.callback, "timeout")
    client_before, simulator_before = process_cpu(), simulator.cpu()
    run.started = time.perf_counter()
    run.feed(run.queue_limit)
    outcome = yield run.done
    client_cpu = process_cpu() - client_before
    simulator_cpu = simulator.cpu() - simulator_before
    if deadline.active():
        deadline.cancel()
    yield run.connector.stopService()
    if hasattr(gc, "unfreeze"):
        gc.unfreeze()

    response_seconds = max(run.last_response - run.started, 1e-9)
    report_seconds = max(run.last_report - run.started, 1e-9)
    thousands = max(run.responses, 1) / 1000
    return {
        "version": version,
        "window": window,
        "timed_out": outcome == "timeout",
        "responses": run.responses,
        "refused": run.refused,
        "failures": run.failures,
        "reports": run.reports,
        "submits_per_second": run.responses / response_seconds,
        "reports_per_second": run.reports / report_seconds,
        "all_reports_seconds": report_seconds,
        "p50_ms": percentile(run.latencies, 0.50) * 1000,
        "p99_ms": percentile(run.latencies, 0.99) * 1000,
        "client_cpu_per_1000": client_cpu / thousands,
        "simulator_cpu_per_1000": simulator_cpu / thousands,
    }


def report_line(figures: dict) -> str:
    """One printed line of a run's figures."""
    version = figures["version"]
    flag = "  TIMED OUT" if figures["timed_out"] else ""
    return (
        f"CMPP {version >> 4}.{version & 0xF} window {figures['window']:>3}: "
        f"{figures['submits_per_second']:>8,.0f} submits/s, "
        f"{figures['reports_per_second']:>8,.0f} reports/s "
        f"({figures['responses']:,} answered, {figures['reports']:,} reports, "
        f"{figures['refused'] + figures['failures']} not accepted), "
        f"submit->response p50 {figures['p50_ms']:.2f} ms "
        f"p99 {figures['p99_ms']:.2f} ms, "
        f"CPU per 1,000: client {figures['client_cpu_per_1000'] * 1000:.0f} ms, "
        f"simulator {figures['simulator_cpu_per_1000'] * 1000:.0f} ms{flag}"
    )


def parser() -> argparse.ArgumentParser:
    """The command-line options."""
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--count", type=int, default=100_000)
    options.add_argument("--seconds", type=float, default=60.0, help="per run")
    options.add_argument("--windows", default="16,32")
    options.add_argument("--versions", default="20,30")
    options.add_argument("--report-delay", type=float, default=0.05)
    options.add_argument(
        "--deferreds",
        action="store_true",
        help="submit through ChannelConnector.submit (a Deferred per message)",
    )
    options.add_argument(
        "--repeat", type=int, default=3, help="runs per case; the best is shown"
    )
    options.add_argument("--profile", help="write a pyinstrument HTML profile here")
    options.add_argument(
        "--profile-simulator", help="write the simulator's pyinstrument profile here"
    )
    return options


@defer.inlineCallbacks
def run_all(reactor, arguments) -> Any:
    """Every (version, window) run against one simulator child; prints as it goes."""
    windows = [int(text) for text in arguments.windows.split(",")]
    versions = [int(text, 16) for text in arguments.versions.split(",")]
    print("Engine bench: ChannelConnector alone (no Redis) -> twist cmppsim child")
    api = "submit() Deferreds" if arguments.deferreds else "submit_with_callbacks()"
    print(f"  submitting through {api}")
    print(f"  {conditions()}")
    print(
        f"  {arguments.count:,} messages per run, every one asking for a report, "
        f"report delay {arguments.report_delay} s, limit {arguments.seconds:g} s/run"
    )
    results = []
    with Simulator(
        [(ACCOUNT, PASSWORD)],
        arguments.report_delay,
        profile=arguments.profile_simulator,
    ) as simulator:
        for version in versions:
            for window in windows:
                runs = []
                for _ in range(arguments.repeat):
                    runs.append(
                        (yield measure(reactor, simulator, version, window, arguments))
                    )
                best = max(runs, key=lambda figures: figures["submits_per_second"])
                print("  " + report_line(best), flush=True)
                if len(runs) > 1:
                    print(
                        f"      best of {len(runs)} runs; all: "
                        + ", ".join(
                            f"{figures['submits_per_second']:,.0f}" for figures in runs
                        )
                        + " submits/s",
                        flush=True,
                    )
                results.append(best)
    return results


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print its figures."""
    arguments = parser().parse_args(argv)
    with profiled(arguments.profile):
        react(lambda reactor: run_all(reactor, arguments))


if __name__ == "__main__":
    main()
