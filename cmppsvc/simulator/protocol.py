# -*- test-case-name: tests.test_simulator_protocol,tests.test_simulator_behaviour -*-
"""The gateway side of one CMPP connection, as the simulator plays it."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import attrs
from twisted.internet.protocol import Protocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from cmppsvc.codec import (
    HEADER_LENGTH,
    MAX_PDU_LENGTH,
    ActiveTest,
    ActiveTestResp,
    CodecError,
    Deliver,
    Terminate,
    TerminateResp,
    decode,
    encode,
)
from cmppsvc.codec.constants import (
    ACTIVE_TEST,
    ACTIVE_TEST_RESP,
    CONNECT,
    DELIVER_RESP,
    SUBMIT,
    SUBMIT_RESP,
    TERMINATE,
    TERMINATE_RESP,
)
from cmppsvc.nodelay import disable_nagle
from cmppsvc.simulator.keeping import ReportKeeping
from cmppsvc.simulator.login import answer_connect
from cmppsvc.simulator.outbox import Outbox
from cmppsvc.simulator.records import (
    UNKNOWN_ACCOUNT,
    AccountCounters,
    ReceivedSubmit,
)
from cmppsvc.simulator.wire import (
    HEADER,
    LAYOUT_20,
    REGISTERED_DELIVERY_OFFSET,
    SERVICE_ID_OFFSET,
    SERVICE_ID_SIZE,
    SOURCE_ID_SIZE,
    TIME_FORMAT,
    layout_for,
)

if TYPE_CHECKING:
    from cmppsvc.simulator.factory import SimulatorFactory

RESULT_STRUCTURE = 1
RESULT_LENGTH = 4
RESULT_FLOW_CONTROL = 8


class SimulatorProtocol(ReportKeeping, Protocol):
    """One SP connection to the simulated ISMG: login, SUBMIT answers, reports.

    SUBMITs are read in place at fixed offsets (see ``wire``) and every answer of
    one ``dataReceived`` leaves in one write; status reports wait in a queue
    flushed by a single timer. Everything else goes through the codec.

    Every status report stays in ``unanswered_reports`` until its DELIVER_RESP
    arrives; when the connection ends, the gateway keeps what is left there for
    the account's next connection.
    """

    log = Logger()

    def __init__(self, gateway: SimulatorFactory) -> None:
        self.gateway = gateway
        self.clock = gateway.clock
        self.account: str | None = None
        self.version: int | None = None
        self.layout = LAYOUT_20
        self.counters: AccountCounters | None = None
        self.submits_received = 0
        self.unanswered_submits = 0
        self._buffer = b""
        self._closing = False
        self._lost = False
        self._terminate_wanted = False
        self._terminate_sent = False
        self._seq = 0
        self._report_context: tuple[bytes, bytes, bytes] | None = None
        self.unanswered_reports: dict[int, bytes] = {}
        self.left_reports: list[tuple[float, bytes]] = []
        self._forgetting_logged = False
        self._heartbeat: LoopingCall | None = None
        self.outbox: Outbox | None = None

    @property
    def logged_in(self) -> bool:
        """True once a CONNECT has been answered with Status 0."""
        return self.account is not None

    @property
    def takes_deliveries(self) -> bool:
        """Logged in and neither closing nor terminating: a DELIVER sent now can
        still be answered."""
        return self.account is not None and not (
            self._lost or self._closing or self._terminate_sent
        )

    def connectionMade(self) -> None:
        disable_nagle(self.transport)
        self.outbox = Outbox(self.clock, self.transport, self._reports_written)
        self.gateway._connection_made(self)

    def connectionLost(self, reason: Failure) -> None:
        self._lost = True
        self.left_reports = self._reports_left(self.outbox.close())
        if self._heartbeat is not None and self._heartbeat.running:
            self._heartbeat.stop()
        self.gateway._connection_lost(self)
        if self.counters is not None and self.account is not None:
            self.counters.disconnects += 1
        self.log.info(
            "simulator connection closed account={account}", account=self.account
        )

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return

        buffer = self._buffer + data if self._buffer else data
        size = len(buffer)
        offset = 0
        out: list[bytes] = []
        reports: list[bytes] = []
        unpack_header = HEADER.unpack_from
        logged_in = self.account is not None
        self._report_context = None

        while size - offset >= HEADER_LENGTH:
            total, command, seq = unpack_header(buffer, offset)
            if total < HEADER_LENGTH or total > MAX_PDU_LENGTH:
                self.log.warn(
                    "simulator dropping connection: Total_Length {length} outside "
                    "{minimum}..{maximum} account={account}",
                    length=total,
                    minimum=HEADER_LENGTH,
                    maximum=MAX_PDU_LENGTH,
                    account=self.account,
                )
                self._closing = True
                break
            end = offset + total
            if end > size:
                break

            if logged_in and command == SUBMIT:
                self._submit(buffer, offset, total, seq, out, reports)
            elif logged_in and command == DELIVER_RESP:
                self._deliver_response(buffer, offset, total, seq)
            else:
                self._other(buffer[offset:end], command, seq, out)
                logged_in = self.account is not None
            offset = end
            if self._closing:
                break

        self._buffer = buffer[offset:] if offset < size else b""
        behaviour = self.gateway.behaviour
        if reports and behaviour.response_delay:
            self._hold_reports_until_submits_answered(reports, behaviour.response_delay)
        if len(self.unanswered_reports) > behaviour.kept_reports_per_account:
            self._forget_oldest_reports(behaviour.kept_reports_per_account)
        self.outbox.send(
            out,
            reports,
            behaviour.response_delay,
            behaviour.report_delay,
            close=self._closing,
        )
        if self._terminate_wanted and not self._terminate_sent:
            self.terminate()
        if self.gateway._submit_waiters:
            self.gateway._check_submit_waiters()

    def _submit(
        self,
        buffer: bytes,
        offset: int,
        total: int,
        seq: int,
        out: list[bytes],
        reports: list[bytes],
    ) -> None:
        gateway = self.gateway
        behaviour = gateway.behaviour
        counters = self.counters
        layout = self.layout
        body = offset + HEADER_LENGTH
        self.submits_received += 1
        counters.submits += 1

        # Only the fields the answer needs are read; an inconsistent frame gets
        # Result 1 or 4 as a real gateway would answer it.
        count = 0
        result = RESULT_STRUCTURE
        if total > HEADER_LENGTH + layout.count_offset:
            count = buffer[body + layout.count_offset]
            if 0 < count < 100:
                length_at = body + layout.message_length_offset(count)
                expected = HEADER_LENGTH + layout.fixed_size
                expected += layout.terminal_size * count
                if length_at < offset + total and total == expected + buffer[length_at]:
                    result = 0
                else:
                    result = RESULT_LENGTH
        if result == 0:
            counters.destinations += count

        window = behaviour.drop_with_full_window
        if window:
            self._hold_submit(buffer, offset, total, seq, window)
            return

        if result == 0:
            result = behaviour.submit_result
        if result == 0 and behaviour.flow_control_rate:
            if not gateway._admit(self.account, count, behaviour.flow_control_rate):
                result = RESULT_FLOW_CONTROL
                counters.flow_controlled += 1

        # One allocation covers the submit's range and, when reports are
        # wanted, the DELIVERs' own Msg_Ids right after it.
        report_wanted = buffer[body + REGISTERED_DELIVERY_OFFSET] == 1
        if result == 0:
            msg_id = gateway.msg_ids.allocate(count * 2 if report_wanted else count)
        else:
            msg_id = 0
            counters.submits_refused += 1
        response = layout.submit_resp
        out.append(response.pack(response.size, SUBMIT_RESP, seq, msg_id, result))

        if gateway.record_submits:
            self._record(buffer[offset : offset + total], seq, msg_id, result)
        if result == 0 and report_wanted:
            self._make_reports(buffer, body, count, msg_id, reports)

        limit = behaviour.terminate_after_submits
        if limit and self.submits_received >= limit:
            self._terminate_wanted = True

    def _hold_submit(
        self, buffer: bytes, offset: int, total: int, seq: int, window: int
    ) -> None:
        """drop_with_full_window: leave the submit unanswered, close at K."""
        self.unanswered_submits += 1
        self.counters.submits_unanswered += 1
        if self.gateway.record_submits:
            self._record(buffer[offset : offset + total], seq, 0, None)
        if self.unanswered_submits >= window:
            self.log.info(
                "simulator dropping connection with a full window of {count} "
                "submits account={account}",
                count=self.unanswered_submits,
                account=self.account,
            )
            self._closing = True

    def _make_reports(
        self, buffer: bytes, body: int, count: int, msg_id: int, reports: list[bytes]
    ) -> None:
        """Status reports for an accepted submit, one per destination."""
        layout = self.layout
        context = self._report_context
        if context is None:
            context = self._report_context = self._new_report_context()
        stat, submit_time, done_time = context

        source_start = body + layout.source_id_offset
        source_id = buffer[source_start : source_start + SOURCE_ID_SIZE]
        service_start = body + SERVICE_ID_OFFSET
        service_id = buffer[service_start : service_start + SERVICE_ID_SIZE]
        size = layout.terminal_size
        start = body + layout.count_offset + 1
        pack = layout.pack_report
        unanswered = self.unanswered_reports
        seq = self._seq
        for index in range(count):
            # The gateway numbers its own requests; wraps 0xFFFFFFFF -> 1.
            seq = seq + 1 if seq < 0xFFFFFFFF else 1
            report = unanswered[seq] = pack(
                seq,
                msg_id + count + index,
                source_id,
                service_id,
                buffer[start : start + size],
                msg_id + index,
                stat,
                submit_time,
                done_time,
                seq,
            )
            reports.append(report)
            start += size
        self._seq = seq

    def _new_report_context(self) -> tuple[bytes, bytes, bytes]:
        behaviour = self.gateway.behaviour
        now = self.clock.seconds()
        done = now + behaviour.response_delay + behaviour.report_delay
        return (
            behaviour.report_stat.encode("ascii")[:7],
            time.strftime(TIME_FORMAT, time.localtime(now)).encode("ascii"),
            time.strftime(TIME_FORMAT, time.localtime(done)).encode("ascii"),
        )

    def _deliver_response(
        self, buffer: bytes, offset: int, total: int, seq: int
    ) -> None:
        counters = self.counters
        counters.deliver_responses += 1
        layout = self.layout
        if total == layout.deliver_resp_size:
            # Any well-formed answer settles the DELIVER, whatever its Result.
            self.unanswered_reports.pop(seq, None)
            # Result is the last field: 1 byte in 2.0, 4 bytes in 3.0.
            if buffer[offset + 20 : offset + total] == layout.deliver_resp_accepted:
                return
        counters.deliver_responses_refused += 1

    def _other(self, frame: bytes, command: int, seq: int, out: list[bytes]) -> None:
        """Every PDU but SUBMIT and DELIVER_RESP after login."""
        if command == CONNECT:
            self._connect(frame, seq, out)
            return
        if self.account is None:
            self.log.warn(
                "simulator dropping connection: Command_Id {command:#010x} before "
                "login",
                command=command,
            )
            self._closing = True
            return

        counters = self.counters
        if command == ACTIVE_TEST:
            counters.active_tests_received += 1
            if self.gateway.behaviour.ignore_heartbeats:
                counters.active_tests_ignored += 1
            else:
                out.append(encode(ActiveTestResp(seq=seq), self.version))
        elif command == ACTIVE_TEST_RESP:
            counters.active_test_responses += 1
        elif command == TERMINATE:
            counters.terminates_received += 1
            out.append(encode(TerminateResp(seq=seq), self.version))
            self._closing = True
        elif command == TERMINATE_RESP:
            if self._terminate_sent:
                self._closing = True
        else:
            self.log.debug(
                "simulator ignoring Command_Id {command:#010x} seq={seq}",
                command=command,
                seq=seq,
            )

    def _connect(self, frame: bytes, seq: int, out: list[bytes]) -> None:
        if self.account is not None:
            self.log.warn(
                "simulator ignoring a second CONNECT account={account}",
                account=self.account,
            )
            return

        gateway = self.gateway
        answer = answer_connect(frame, seq, gateway.accounts, gateway.versions)
        out.append(answer.response)
        # Unknown names share one bucket, so garbage logins cannot grow the table.
        known = answer.account in gateway.accounts
        counters = gateway.counters(answer.account if known else UNKNOWN_ACCOUNT)
        counters.connections += 1
        if not answer.accepted:
            counters.refused_logins += 1
            self.log.info(
                "simulator refused login account={account} status={status}",
                account=answer.account,
                status=answer.status,
            )
            self._closing = True
            return

        counters.logins += 1
        self.account = answer.account
        self.version = answer.version
        self.layout = layout_for(answer.version)
        self.counters = counters
        self.log.info(
            "simulator login account={account} version={version:#04x}",
            account=answer.account,
            version=answer.version,
        )
        self._start_timers()
        self.resend_kept_reports(out)
        gateway._logged_in(self)

    def _start_timers(self) -> None:
        behaviour = self.gateway.behaviour
        if behaviour.heartbeat_interval:
            self._heartbeat = LoopingCall(self.send_active_test)
            self._heartbeat.clock = self.clock
            self._heartbeat.start(behaviour.heartbeat_interval, now=False)
        if behaviour.terminate_after_seconds:
            self.outbox.later(behaviour.terminate_after_seconds, self.terminate)

    def _reports_written(self, count: int) -> None:
        self.counters.reports_sent += count

    def _next_seq(self) -> int:
        # The gateway numbers its own requests; wraps 0xFFFFFFFF -> 1, never 0.
        seq = self._seq + 1
        if seq > 0xFFFFFFFF:
            seq = 1
        self._seq = seq
        return seq

    def _record(self, frame: bytes, seq: int, msg_id: int, result: int | None) -> None:
        try:
            submit = decode(frame, self.version)
        except CodecError as error:
            self.log.warn("simulator could not record a SUBMIT: {error}", error=error)
            return
        self.gateway.submits.append(
            ReceivedSubmit(self.account, self.version, seq, msg_id, result, submit)
        )

    def send_deliver(self, deliver: Deliver) -> int:
        """Send a DELIVER (MO message or report) now with a fresh seq; returns it.

        A report is kept until answered, as the generated ones are."""
        if self.account is None or self._lost:
            raise RuntimeError("the connection is not logged in")
        seq = self._next_seq()
        frame = encode(attrs.evolve(deliver, seq=seq), self.version)
        if deliver.registered_delivery == 1:
            self.unanswered_reports[seq] = frame
        self.transport.write(frame)
        return seq

    def send_active_test(self) -> None:
        """Send the simulator's own ACTIVE_TEST."""
        if self._lost or self.account is None:
            return
        self.counters.active_tests_sent += 1
        self.transport.write(encode(ActiveTest(seq=self._next_seq()), self.version))

    def terminate(self) -> None:
        """Send TERMINATE; close on TERMINATE_RESP or after terminate_timeout."""
        if self._terminate_sent or self._lost or self.account is None:
            return
        self._terminate_sent = True
        self.counters.terminates_sent += 1
        self.log.info("simulator terminating account={account}", account=self.account)
        self.transport.write(encode(Terminate(seq=self._next_seq()), self.version))
        self.outbox.later(
            self.gateway.behaviour.terminate_timeout, self.outbox.write, b"", True
        )
