# -*- test-case-name: tests.test_simulator_protocol,tests.test_simulator_loopback -*-
"""The simulated ISMG: accounts, behaviour, shared Msg_Ids, what it received."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger

from cmppsvc.codec import VERSION_20, VERSION_30
from cmppsvc.codec.text import MSG_FMT_UCS2
from cmppsvc.simulator.accounts import Accounts
from cmppsvc.simulator.behaviour import Behaviour
from cmppsvc.simulator.mo import mo_delivers, report_deliver, split_mo
from cmppsvc.simulator.msgids import MsgIdAllocator
from cmppsvc.simulator.protocol import SimulatorProtocol
from cmppsvc.simulator.records import AccountCounters, ReceivedSubmit
from cmppsvc.simulator.undelivered import UndeliveredReports

SUPPORTED_VERSIONS = frozenset({VERSION_20, 0x21, VERSION_30})


class SimulatorFactory(ServerFactory):
    """A CMPP 2.0/3.0 gateway for tests, demos and benchmarks.

    Listen with any server endpoint, e.g.
    ``TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)``.
    ``behaviour`` may be changed at any time; connections read it as they go.
    """

    log = Logger()

    # The simulator logs its own start and logins; Twisted's "Starting factory
    # <...object at 0x...>" lines say nothing an operator can use.
    noisy = False

    def __init__(
        self,
        accounts: Accounts | Mapping[str, str],
        clock: IReactorTime,
        behaviour: Behaviour | None = None,
        gateway_code: int = 1001,
        versions: Iterable[int] = SUPPORTED_VERSIONS,
        record_submits: bool = False,
    ) -> None:
        self.accounts = (
            accounts if isinstance(accounts, Accounts) else Accounts(accounts)
        )
        self.clock = clock
        self.behaviour = behaviour if behaviour is not None else Behaviour()
        self.versions = frozenset(versions)
        if not self.versions:
            raise ValueError("versions must name at least one CMPP version")
        self.msg_ids = MsgIdAllocator(clock, gateway_code)
        self.record_submits = record_submits
        self.submits: list[ReceivedSubmit] = []
        self.connections: list[SimulatorProtocol] = []
        self._counters: dict[str, AccountCounters] = {}
        self.undelivered = UndeliveredReports()
        self._rate_windows: dict[str, list[int]] = {}
        self._login_waiters: list[tuple[str | None, Deferred]] = []
        self._mo_reference = 0
        self._submit_waiters: list[tuple[int, str | None, Deferred]] = []

    def buildProtocol(self, addr: IAddress) -> SimulatorProtocol:
        protocol = SimulatorProtocol(self)
        protocol.factory = self
        return protocol

    def counters(self, account: str) -> AccountCounters:
        """The counters of ``account`` (all zero for an account not seen yet).

        Logins naming an unknown account count under ``UNKNOWN_ACCOUNT`` ("").
        """
        counters = self._counters.get(account)
        if counters is None:
            counters = self._counters[account] = AccountCounters()
        return counters

    def total_submits(self, account: str | None = None) -> int:
        """SUBMITs received for ``account``, or for every account."""
        if account is not None:
            return self.counters(account).submits
        return sum(counters.submits for counters in self._counters.values())

    def logged_in(self, account: str | None = None) -> list[SimulatorProtocol]:
        """Live logged-in connections, of ``account`` or of every account."""
        return [
            connection
            for connection in self.connections
            if connection.logged_in and account in (None, connection.account)
        ]

    def wait_for_login(self, account: str | None = None) -> Deferred:
        """Fires with a logged-in connection of ``account`` (any account if None):
        at once if there is one, otherwise at the next login."""
        ready = self.logged_in(account)
        if ready:
            return succeed(ready[0])
        waiter: Deferred = Deferred()
        self._login_waiters.append((account, waiter))
        return waiter

    def wait_for_submits(self, count: int, account: str | None = None) -> Deferred:
        """Fires with the factory once ``count`` SUBMITs have been received (of
        ``account``, or of every account)."""
        if self.total_submits(account) >= count:
            return succeed(self)
        waiter: Deferred = Deferred()
        self._submit_waiters.append((count, account, waiter))
        return waiter

    def terminate_all(self) -> None:
        """Send TERMINATE on every logged-in connection (an orderly gateway stop)."""
        for connection in self.logged_in():
            connection.terminate()

    def disconnect_all(self) -> None:
        """Close every connection at once, without TERMINATE (a gateway crash)."""
        for connection in list(self.connections):
            connection.transport.loseConnection()

    def inject_mo(
        self,
        src_terminal_id: str,
        text: str | bytes,
        account: str | None = None,
        dest_id: str = "10658012",
        msg_fmt: int = MSG_FMT_UCS2,
        service_id: str = "",
        link_id: str = "",
        reference: int | None = None,
    ) -> list[int]:
        """Send an MO message from a handset to ``account`` (any logged-in one if
        None), split into UDH segments when longer than one SMS.

        Returns the DELIVER Msg_Ids, one per segment. LookupError when no
        connection of the account is logged in.
        """
        connection = self._connection_for(account)
        if reference is None:
            reference = self._mo_reference = (self._mo_reference + 1) & 0xFF
        contents = split_mo(text, msg_fmt, reference)
        msg_ids = [self.msg_ids.allocate() for _ in contents]
        delivers = mo_delivers(
            msg_ids, contents, src_terminal_id, dest_id, msg_fmt, service_id, link_id
        )
        for deliver in delivers:
            connection.send_deliver(deliver)
        connection.counters.mo_sent += len(delivers)
        return msg_ids

    def inject_report(
        self,
        msg_id: int,
        dest_terminal_id: str,
        stat: str = "DELIVRD",
        account: str | None = None,
        dest_id: str = "10658012",
    ) -> int:
        """Send a status report for ``msg_id`` now (e.g. a late or failed one).

        Returns the DELIVER's own Msg_Id.
        """
        connection = self._connection_for(account)
        now = self.clock.seconds()
        deliver = report_deliver(
            self.msg_ids.allocate(), msg_id, dest_terminal_id, stat, now, now, dest_id
        )
        connection.send_deliver(deliver)
        connection.counters.reports_sent += 1
        return deliver.msg_id

    def _connection_for(self, account: str | None) -> SimulatorProtocol:
        ready = self.logged_in(account)
        if not ready:
            raise LookupError(f"no logged-in connection of account {account!r}")
        return ready[0]

    def _admit(self, account: str, count: int, rate: float) -> bool:
        """flow_control_rate: whether ``count`` more destinations fit this second."""
        second = int(self.clock.seconds())
        window = self._rate_windows.get(account)
        if window is None or window[0] != second:
            window = self._rate_windows[account] = [second, 0]
        if window[1] + count > rate:
            return False
        window[1] += count
        return True

    def _connection_made(self, protocol: SimulatorProtocol) -> None:
        self.connections.append(protocol)

    def _connection_lost(self, protocol: SimulatorProtocol) -> None:
        if protocol in self.connections:
            self.connections.remove(protocol)
        if protocol.account is not None and protocol.left_reports:
            self._keep_reports(protocol)

    def _keep_reports(self, protocol: SimulatorProtocol) -> None:
        """A connection ended with reports unsent or unanswered: keep them for
        the account, and send them at once on another of its connections if
        one is up (else its next login does)."""
        account = protocol.account
        cap = self.behaviour.kept_reports_per_account
        added, dropped = self.undelivered.keep(
            account, protocol.version, protocol.left_reports, cap
        )
        protocol.left_reports = []
        protocol.unanswered_reports.clear()
        protocol.counters.reports_kept += added
        protocol.counters.reports_dropped += dropped
        self.log.info(
            "simulator keeps {count} unacknowledged status reports of "
            "account={account} for its next connection",
            count=self.undelivered.count(account),
            account=account,
        )
        for connection in self.connections:
            if connection.account == account and connection.takes_deliveries:
                connection.resend_kept_reports()
                return

    def _logged_in(self, protocol: SimulatorProtocol) -> None:
        waiting = self._login_waiters
        self._login_waiters = []
        for account, waiter in waiting:
            if account in (None, protocol.account):
                waiter.callback(protocol)
            else:
                self._login_waiters.append((account, waiter))

    def _check_submit_waiters(self) -> None:
        waiting = self._submit_waiters
        self._submit_waiters = []
        for count, account, waiter in waiting:
            if self.total_submits(account) >= count:
                waiter.callback(self)
            else:
                self._submit_waiters.append((count, account, waiter))
