# -*- test-case-name: tests.test_simulator_loopback -*-
"""``twistd cmppsim``: run the ISMG simulator as a Twisted service."""

from __future__ import annotations

import gc
from pathlib import Path

from twisted.application.service import IService, Service
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort, IReactorCore
from twisted.logger import Logger
from twisted.python import usage
from twisted.python.failure import Failure

from cmppsvc.simulator.accounts import Accounts, parse_account
from cmppsvc.simulator.behaviour import Behaviour
from cmppsvc.simulator.factory import SUPPORTED_VERSIONS, SimulatorFactory

DEFAULT_LISTEN = "tcp:7890:interface=127.0.0.1"


def loopback_only(description: str) -> str:
    """A TCP endpoint description without ``interface=`` listens on 127.0.0.1."""
    kind = description.split(":", 1)[0].lower()
    if kind in ("tcp", "tcp6") and "interface=" not in description:
        return description + ":interface=" + ("::1" if kind == "tcp6" else "127.0.0.1")
    return description


def _versions(text: str) -> frozenset[int]:
    versions = frozenset(int(part, 16) for part in text.split(",") if part.strip())
    if not versions:
        raise ValueError("at least one version")
    return versions


class Options(usage.Options):
    """Command-line options of ``twistd cmppsim``."""

    synopsis = "[options]"
    longdesc = (
        "A CMPP 2.0/3.0 gateway (ISMG) simulator for tests, demos and benchmarks. "
        "It checks logins (Status 2 unknown account, 3 wrong password, 4 version "
        "not spoken), answers SUBMIT with fresh Msg_Ids and sends a DELIVRD status "
        "report for every destination of a submit asking for one. The misbehaviour "
        "options make it a bad gateway on purpose; 0 means off. Listens on "
        "127.0.0.1 unless the endpoint names another interface."
    )
    optFlags = [
        ["ignore-heartbeats", None, "Answer no ACTIVE_TEST after login."],
    ]
    optParameters = [
        [
            "listen",
            "l",
            DEFAULT_LISTEN,
            "Server endpoint description (tcp:0:... picks a free port).",
        ],
        ["gateway-code", None, 1001, "ISMG code put into every Msg_Id.", int],
        [
            "versions",
            None,
            None,
            "CMPP versions accepted, hex, comma separated [default: 20,21,30].",
            _versions,
        ],
        [
            "report-delay",
            None,
            0.1,
            "Seconds from SUBMIT_RESP to status report (0: at once).",
            float,
        ],
        ["report-stat", None, "DELIVRD", "Stat of every status report."],
        ["submit-result", None, 0, "Result answered to every SUBMIT.", int],
        ["response-delay", None, 0.0, "Seconds every response is held back.", float],
        [
            "drop-with-full-window",
            None,
            0,
            "Answer no SUBMIT; close once K are unanswered.",
            int,
        ],
        [
            "flow-control-rate",
            None,
            0.0,
            "Result 8 above R destinations per second per account.",
            float,
        ],
        [
            "terminate-after-submits",
            None,
            0,
            "Send TERMINATE after M SUBMITs on a connection.",
            int,
        ],
        [
            "terminate-after-seconds",
            None,
            0.0,
            "Send TERMINATE D seconds after login.",
            float,
        ],
        [
            "heartbeat-interval",
            None,
            0.0,
            "Seconds between the simulator's own ACTIVE_TESTs.",
            float,
        ],
        [
            "kept-reports",
            None,
            100_000,
            "Unacknowledged status reports kept per account for its next "
            "connection (oldest dropped beyond; 0: none).",
            int,
        ],
        [
            "port-file",
            None,
            None,
            "Write the listening port number into this file.",
        ],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["accounts"] = []

    def opt_account(self, specification: str) -> None:
        """ACCOUNT:PASSWORD accepted by the gateway (repeatable)."""
        try:
            self["accounts"].append(parse_account(specification))
        except ValueError as error:
            raise usage.UsageError(str(error)) from None

    opt_a = opt_account

    def opt_accounts_file(self, path: str) -> None:
        """A file of ACCOUNT:PASSWORD lines (blank lines and # comments skipped)."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            raise usage.UsageError(f"cannot read accounts file: {error}") from None
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                self["accounts"].append(parse_account(line))
            except ValueError as error:
                raise usage.UsageError(f"{path} line {number}: {error}") from None

    def postOptions(self) -> None:
        if not self["accounts"]:
            raise usage.UsageError(
                "give at least one --account ACCOUNT:PASSWORD or an --accounts-file"
            )
        try:
            self["behaviour"] = Behaviour(
                report_delay=self["report-delay"],
                report_stat=self["report-stat"],
                submit_result=self["submit-result"],
                response_delay=self["response-delay"],
                drop_with_full_window=self["drop-with-full-window"],
                flow_control_rate=self["flow-control-rate"],
                ignore_heartbeats=bool(self["ignore-heartbeats"]),
                terminate_after_submits=self["terminate-after-submits"],
                terminate_after_seconds=self["terminate-after-seconds"],
                heartbeat_interval=self["heartbeat-interval"],
                kept_reports_per_account=self["kept-reports"],
            )
        except ValueError as error:
            raise usage.UsageError(str(error)) from None
        self["listen"] = loopback_only(self["listen"])


class SimulatorService(Service):
    """Listens with the simulator on an endpoint; optionally writes the port."""

    log = Logger()

    def __init__(
        self,
        reactor: IReactorCore,
        description: str,
        factory: SimulatorFactory,
        port_file: str | None = None,
    ) -> None:
        self.reactor = reactor
        self.description = description
        self.factory = factory
        self.port_file = port_file
        self.port: IListeningPort | None = None

    def startService(self) -> None:
        super().startService()
        endpoint = serverFromString(self.reactor, self.description)
        listening = endpoint.listen(self.factory)
        listening.addCallbacks(self._listening, self._failed)

    def _listening(self, port: IListeningPort) -> None:
        self.port = port
        # What start-up built (modules, the reactor) lives as long as the
        # process: out of the collector's view it no longer makes each full
        # collection a pause of tens of ms, which the client would see as a
        # late answer (the pipeline benchmark's latency tail).
        if hasattr(gc, "freeze"):  # CPython's; PyPy's collector has none
            gc.freeze()
        number = getattr(port.getHost(), "port", None)
        self.log.info("cmppsim listening on {address}", address=port.getHost())
        if self.port_file and number is not None:
            Path(self.port_file).write_text(f"{number}\n")

    def _failed(self, failure: Failure) -> None:
        self.log.failure("cmppsim could not listen", failure)
        self.reactor.stop()

    def stopService(self):
        super().stopService()
        self.factory.disconnect_all()
        if self.port is not None:
            return self.port.stopListening()
        return None


def makeService(options: Options) -> IService:
    """The simulator service described by ``options`` (on the global reactor)."""
    from twisted.internet import reactor

    factory = SimulatorFactory(
        Accounts(dict(options["accounts"])),
        reactor,
        behaviour=options["behaviour"],
        gateway_code=options["gateway-code"],
        versions=options["versions"] or SUPPORTED_VERSIONS,
    )
    return SimulatorService(reactor, options["listen"], factory, options["port-file"])
