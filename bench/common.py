"""What every benchmark shares: the conditions line, the simulator child, CPU clocks.

Every benchmark prints the conditions it ran under (cmppsvc version, Python, CPU
model and count) and keeps the simulated gateway in a child process so that the
CPU figures of this process are the client's alone.  Everything listens and
connects on 127.0.0.1 only.
"""

from __future__ import annotations

import datetime
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Seconds the simulator child may take to write its port file.
SIMULATOR_START_SECONDS = 20.0


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or what ``platform`` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def package_version() -> str:
    """The cmppsvc version and, when in a git checkout, its commit."""
    from cmppsvc import __version__

    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
    except OSError:
        commit = ""
    return f"{__version__} ({commit})" if commit else __version__


def conditions() -> str:
    """One line naming the software and the machine the figures come from."""
    return (
        f"cmppsvc {package_version()}, Python {platform.python_version()} "
        f"({platform.python_implementation()}), {cpu_model()}, "
        f"{os.cpu_count()} CPUs, {datetime.date.today().isoformat()}"
    )


def process_cpu() -> float:
    """User plus system CPU seconds of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child_cpu(pid: int) -> float:
    """User plus system CPU seconds of another process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_megabytes(pid: int | None = None) -> float:
    """Resident memory of a process (this one by default), in MB."""
    status = Path(f"/proc/{pid or 'self'}/status").read_text()
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentile(values: Sequence[float], fraction: float) -> float:
    """The value below which ``fraction`` of the sorted ``values`` lie (0 if none)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


class Simulator:
    """``twist cmppsim`` in a child process on a free 127.0.0.1 port.

    ``accounts`` are (account, password) pairs; many of them go through an
    accounts file so the command line stays short.  Use as a context manager;
    leaving it terminates the child.
    """

    def __init__(
        self,
        accounts: Iterable[tuple[str, str]],
        report_delay: float = 0.05,
        extra: Sequence[str] = (),
        profile: str | None = None,
    ) -> None:
        self._accounts = list(accounts)
        self._profile = profile
        self._report_delay = report_delay
        self._extra = list(extra)
        self._directory = tempfile.TemporaryDirectory(prefix="cmppsvc-bench-")
        self.child: subprocess.Popen | None = None
        self.port = 0

    def __enter__(self) -> Simulator:
        directory = Path(self._directory.name)
        port_file = directory / "port"
        if self._profile:
            start = [sys.executable, "-m", "bench.simchild", self._profile]
        else:
            start = [sys.executable, "-m", "twisted", "--log-level", "warn", "cmppsim"]
        command = [
            *start,
            "--listen", "tcp:0:interface=127.0.0.1", "--port-file", str(port_file),
            "--report-delay", str(self._report_delay),
        ]  # fmt: skip
        if len(self._accounts) > 20:
            accounts_file = directory / "accounts"
            accounts_file.write_text(
                "".join(
                    f"{account}:{password}\n" for account, password in self._accounts
                )
            )
            command += ["--accounts-file", str(accounts_file)]
        else:
            for account, password in self._accounts:
                command += ["--account", f"{account}:{password}"]
        command += self._extra

        self.child = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + SIMULATOR_START_SECONDS
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.child.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise SystemExit("bench: the simulator did not start")
            time.sleep(0.05)
        self.port = int(port_file.read_text())
        return self

    def cpu(self) -> float:
        """CPU seconds the simulator child used so far."""
        assert self.child is not None
        return child_cpu(self.child.pid)

    def close(self) -> None:
        """Stop the child (bounded wait) and remove its files."""
        if self.child is not None and self.child.poll() is None:
            self.child.terminate()
            try:
                self.child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.child.kill()
                self.child.wait(timeout=10)
        self._directory.cleanup()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


#: No benchmark process runs longer than this, whatever its options say (seconds).
RUN_LIMIT = 600.0


def react(body: Callable, limit: float = RUN_LIMIT) -> object:
    """Run ``body(reactor)`` on the global reactor until its Deferred fires.

    Unlike ``twisted.internet.task.react`` it returns (the result) instead of
    exiting, and re-raises a failure.  After ``limit`` seconds the run is
    abandoned with an error, so a stuck benchmark still ends by itself.
    """
    from twisted.internet import defer, reactor
    from twisted.python.failure import Failure

    # Figures appear as they are measured, also through a pipe.
    sys.stdout.reconfigure(line_buffering=True)
    outcome: list = []

    def finished(result: object) -> None:
        if not outcome:
            outcome.append(result)
            reactor.stop()

    def overdue() -> None:
        finished(
            Failure(SystemExit(f"bench: still running after {limit:g} s, given up"))
        )

    watchdog = reactor.callLater(limit, overdue)
    reactor.callWhenRunning(
        lambda: defer.maybeDeferred(body, reactor).addBoth(finished)
    )
    reactor.run(installSignalHandlers=False)
    if watchdog.active():
        watchdog.cancel()
    result = outcome[0] if outcome else None
    if hasattr(result, "raiseException"):
        result.raiseException()
    return result


#: Lines of the flat profile (functions by their own time) printed.
PROFILE_FLAT_LINES = 50


@contextmanager
def profiled(path: str | None) -> Iterator[None]:
    """Profile the block with pyinstrument when ``path`` is given: HTML to
    ``path``, the call tree and the functions with the most time of their own
    printed."""
    if not path:
        yield
        return

    from pyinstrument import Profiler
    from pyinstrument.renderers import ConsoleRenderer

    profiler = Profiler(interval=0.0005)
    profiler.start()
    try:
        yield
    finally:
        profiler.stop()
        Path(path).write_text(profiler.output_html(), encoding="utf-8")
        print(profiler.output_text(unicode=False, color=False, show_all=False))
        flat = profiler.output(ConsoleRenderer(flat=True, show_all=True))
        print("\n".join(flat.splitlines()[:PROFILE_FLAT_LINES]))


def channel_record(
    channel_id: str,
    account: str,
    password: str,
    port: int,
    rate: float = 1_000_000,
    window: int = 16,
    version: int = 0x20,
) -> str:
    """A ``channel-info:<id>`` record JSON like the fixture's, on the simulator."""
    import json

    return json.dumps(
        {
            "id": channel_id,
            "channelId": channel_id,
            "channelName": account,
            "account": account,
            "passpwd": password,
            "corpid": account,
            "number": "10658012",
            "gatewayNomber": "10658012",
            "serviceid": "help",
            "gatewayServiceId": "help",
            "gatewayIp": "127.0.0.1",
            "gatewayPort": port,
            "speed": rate,
            "sendRate": rate,
            "window": window,
            "cmppVersion": version,
            "wordsLen": 70,
            "wordsMaxlen": 500,
            "msgformat": 8,
            "expidLen": 4,
            "status": 4,
            "windowstats": False,
        }
    )


def start_service(reactor, local) -> object:
    """A started CmppService on a benchmark's private Redis (a ``LocalRedis``),
    consumer "bench", loopback channels only."""
    from cmppsvc.guard import loopback_only
    from cmppsvc.redisconn import RedisAddress
    from cmppsvc.runtime import CmppService

    service = CmppService(
        RedisAddress.from_url(local.url),
        reactor,
        consumer_name="bench",
        config_filter=loopback_only,
    )
    service.startService()
    return service
