# test-case-name: tests.test_simulator_protocol
"""The simulator's gateway side: login, SUBMIT answers, status reports, MO."""

import time

from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from cmppsvc.codec import (
    VERSION_20,
    VERSION_30,
    ActiveTest,
    ActiveTestResp,
    Deliver,
    DeliverResp,
    SubmitResp,
    Terminate,
    TerminateResp,
    encode,
)
from cmppsvc.codec.msgid import parse_msg_id
from cmppsvc.simulator import Behaviour
from cmppsvc.simulator.wire import HEADER
from tests.test_simulator_support import ACCOUNT, PASSWORD, START, Harness

# Reference vectors V1b and V1c: CONNECT_RESP frames for the V1 login.
CONNECT_RESP_20 = bytes.fromhex(
    "0000001e800000010000000100581d92452a105191fd7d8ff97f161d0b20"
)
CONNECT_RESP_30 = bytes.fromhex(
    "000000218000000100000001000000002a765b7f5ac144dc6b1467824f2f869330"
)


class LoginTests(SynchronousTestCase):
    """CONNECT is checked per reference 2.1 and answered per 2.2."""

    def test_connect_resp_20_matches_reference(self) -> None:
        harness = Harness(VERSION_20)
        harness.login()
        # The harness decoded it already; send again on a new connection raw.
        harness.connect()
        harness.seq = 0
        harness.send_bytes(_v1_connect(VERSION_20))
        self.assertEqual(harness.transport.value(), CONNECT_RESP_20)
        self.assertTrue(harness.protocol.logged_in)

    def test_connect_resp_30_matches_reference(self) -> None:
        harness = Harness(VERSION_30)
        harness.send_bytes(_v1_connect(VERSION_30))
        self.assertEqual(harness.transport.value(), CONNECT_RESP_30)

    def test_wrong_password(self) -> None:
        harness = Harness()
        response = harness.login(password="wrong")
        self.assertEqual((response.status, response.authenticator_ismg), (3, bytes(16)))
        self.assertTrue(harness.closing)
        self.assertEqual(harness.factory.counters(ACCOUNT).refused_logins, 1)

    def test_unknown_account(self) -> None:
        harness = Harness()
        self.assertEqual(harness.login(account="999999").status, 2)
        self.assertTrue(harness.closing)
        self.assertEqual(harness.factory.counters("").refused_logins, 1)

    def test_unsupported_version(self) -> None:
        harness = Harness(VERSION_30, versions={VERSION_20})
        response = harness.login()
        self.assertEqual((response.status, response.version), (4, VERSION_20))
        self.assertTrue(harness.closing)

    def test_short_account_either_hash_form(self) -> None:
        harness = Harness(accounts={"1002": PASSWORD})
        self.assertEqual(harness.login(account="1002").status, 0)

    def test_nothing_before_login(self) -> None:
        harness = Harness()
        harness.send(harness.submit())
        self.assertEqual(harness.received(), [])
        self.assertTrue(harness.closing)

    def test_bad_total_length_drops(self) -> None:
        harness = Harness()
        harness.login()
        harness.send_bytes(b"\x00\x00\x00\x05\x00\x00\x00\x08\x00\x00\x00\x01")
        self.assertTrue(harness.closing)

    def test_password_never_logged(self) -> None:
        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        harness = Harness()
        harness.login(password="wrong")
        harness.connect()
        harness.login()
        self.assertNotIn(PASSWORD, repr(events))
        self.assertNotIn(PASSWORD, repr(harness.factory.accounts))


class SubmitTests(SynchronousTestCase):
    """SUBMIT_RESP with fresh Msg_Ids, then DELIVRD reports."""

    def _logged_in(self, version: int, **behaviour: object) -> Harness:
        harness = Harness(version, Behaviour(**behaviour))
        self.assertEqual(harness.login().status, 0)
        return harness

    def test_submit_and_report(self) -> None:
        for version in (VERSION_20, VERSION_30):
            harness = self._logged_in(version)
            submit = harness.submit()
            harness.send(submit)
            (response,) = harness.received()
            self.assertIsInstance(response, SubmitResp)
            self.assertEqual((response.seq, response.result), (submit.seq, 0))

            fields = parse_msg_id(response.msg_id)
            moment = time.localtime(START)
            self.assertEqual(
                (fields.month, fields.day, fields.second, fields.gateway),
                (moment.tm_mon, moment.tm_mday, moment.tm_sec, 1001),
            )

            self.assertEqual(harness.received(), [])
            harness.clock.advance(0.1)
            (deliver,) = harness.received()
            self.assertEqual(deliver.registered_delivery, 1)
            self.assertEqual(deliver.report.msg_id, response.msg_id)
            self.assertEqual(deliver.report.stat, "DELIVRD")
            self.assertEqual(deliver.report.dest_terminal_id, "13800138000")
            self.assertEqual(deliver.src_terminal_id, "13800138000")
            self.assertEqual(deliver.dest_id, "10658012")
            self.assertNotEqual(deliver.msg_id, response.msg_id)

            harness.send(DeliverResp(msg_id=deliver.msg_id, result=0, seq=deliver.seq))
            counters = harness.factory.counters(ACCOUNT)
            self.assertEqual(
                (counters.submits, counters.reports_sent, counters.deliver_responses),
                (1, 1, 1),
            )

    def test_mass_send_reports_per_destination(self) -> None:
        harness = self._logged_in(VERSION_30, report_delay=0)
        harness.send(harness.submit("13800000001", "13800000002", "13800000003"))
        response, *reports = harness.received()
        self.assertEqual(
            [(r.report.msg_id, r.report.dest_terminal_id) for r in reports],
            [(response.msg_id + index, f"1380000000{index + 1}") for index in range(3)],
        )

    def test_no_report_unless_asked(self) -> None:
        harness = self._logged_in(VERSION_20, report_delay=0)
        harness.send(harness.submit(registered_delivery=0))
        self.assertEqual([type(pdu) for pdu in harness.received()], [SubmitResp])

    def test_pipelined_batch_is_one_write(self) -> None:
        harness = self._logged_in(VERSION_20, report_delay=0)
        submits = [harness.submit() for _ in range(50)]
        writes: list[bytes] = []
        harness.transport.write = writes.append
        harness.send(*submits)
        self.assertEqual(len(writes), 1)

    def test_msg_ids_unique_and_byte_by_byte(self) -> None:
        harness = self._logged_in(VERSION_30, report_delay=0)
        data = b"".join(encode(harness.submit(), VERSION_30) for _ in range(20))
        for index in range(len(data)):
            harness.send_bytes(data[index : index + 1])
        pdus = harness.received()
        responses = [pdu for pdu in pdus if isinstance(pdu, SubmitResp)]
        self.assertEqual(len(responses), 20)
        identities = {pdu.msg_id for pdu in pdus}
        self.assertEqual(len(identities), 40)

    def test_inconsistent_length_gets_result_4(self) -> None:
        harness = self._logged_in(VERSION_20)
        frame = bytearray(encode(harness.submit(), VERSION_20))
        frame[-19] += 1  # Msg_Length (before 10 content, 8 Reserve bytes)
        harness.send_bytes(bytes(frame))
        (response,) = harness.received()
        self.assertEqual(response.result, 4)

    def test_record_of_submits(self) -> None:
        harness = self._logged_in(VERSION_30)
        submit = harness.submit(pk_total=2, pk_number=1, tp_udhi=1)
        harness.send(submit)
        (response,) = harness.received()
        (record,) = harness.factory.submits
        self.assertEqual(
            (record.account, record.seq, record.msg_id, record.result),
            (ACCOUNT, submit.seq, response.msg_id, 0),
        )
        self.assertEqual(record.dest_terminal_ids, ("13800138000",))
        self.assertEqual((record.pk_total, record.pk_number), (2, 1))
        self.assertEqual(record.msg_content, submit.msg_content)

    def test_wait_for_submits(self) -> None:
        harness = self._logged_in(VERSION_20)
        fired: list[object] = []
        harness.factory.wait_for_submits(2, ACCOUNT).addCallback(fired.append)
        harness.send(harness.submit())
        self.assertEqual(fired, [])
        harness.send(harness.submit())
        self.assertEqual(fired, [harness.factory])


class OtherPduTests(SynchronousTestCase):
    """Heartbeats, TERMINATE and MO injection."""

    def test_active_test(self) -> None:
        harness = Harness()
        harness.login()
        harness.send(ActiveTest(seq=9))
        self.assertEqual(harness.received(), [ActiveTestResp(seq=9)])

    def test_terminate(self) -> None:
        harness = Harness()
        harness.login()
        harness.send(Terminate(seq=7))
        self.assertEqual(harness.received(), [TerminateResp(seq=7)])
        self.assertTrue(harness.closing)
        harness.lose()
        self.assertEqual(harness.factory.connections, [])
        self.assertEqual(harness.factory.counters(ACCOUNT).disconnects, 1)

    def test_lost_connection_cancels_timers(self) -> None:
        harness = Harness()
        harness.login()
        harness.send(harness.submit())
        harness.lose()
        self.assertEqual(harness.clock.getDelayedCalls(), [])

    def test_inject_mo(self) -> None:
        harness = Harness(VERSION_30)
        harness.login()
        msg_ids = harness.factory.inject_mo(
            "13900000000", "hello", dest_id="10658012123", link_id="L1"
        )
        (deliver,) = harness.received()
        self.assertIsInstance(deliver, Deliver)
        self.assertEqual(msg_ids, [deliver.msg_id])
        self.assertEqual(
            (deliver.src_terminal_id, deliver.dest_id, deliver.link_id),
            ("13900000000", "10658012123", "L1"),
        )
        self.assertEqual(deliver.msg_content, "hello".encode("utf-16-be"))
        self.assertEqual(deliver.registered_delivery, 0)

    def test_inject_long_mo(self) -> None:
        harness = Harness(VERSION_20)
        harness.login()
        text = "长" * 150
        harness.factory.inject_mo("13900000000", text, reference=0x2A)
        delivers = harness.received()
        self.assertEqual(len(delivers), 3)
        self.assertTrue(all(deliver.tp_udhi == 1 for deliver in delivers))
        self.assertEqual(
            [deliver.msg_content[:6] for deliver in delivers],
            [bytes([5, 0, 3, 0x2A, 3, number]) for number in (1, 2, 3)],
        )
        joined = b"".join(deliver.msg_content[6:] for deliver in delivers)
        self.assertEqual(joined.decode("utf-16-be"), text)
        self.assertEqual(harness.factory.counters(ACCOUNT).mo_sent, 3)

    def test_inject_report(self) -> None:
        harness = Harness(VERSION_30)
        harness.login()
        harness.factory.inject_report(1234, "13800138000", stat="UNDELIV")
        (deliver,) = harness.received()
        self.assertEqual(
            (deliver.report.msg_id, deliver.report.stat), (1234, "UNDELIV")
        )

    def test_inject_without_login_fails(self) -> None:
        harness = Harness()
        self.assertRaises(LookupError, harness.factory.inject_mo, "139", "hi")


def _v1_connect(version: int) -> bytes:
    """Reference vector V1's CONNECT frame with ``version``."""
    frame = bytearray(
        bytes.fromhex(
            "000000270000000100000001393031323334"
            "0ae9f6e3bcd24d4732c2ea3deed084af3047b6a895"
        )
    )
    frame[34] = version
    return bytes(frame)


class GarbageTests(SynchronousTestCase):
    """Untrusted bytes give a clear answer or a dropped connection, never a crash."""

    def test_short_connect_gets_status_1(self) -> None:
        harness = Harness()
        harness.send_bytes(bytes.fromhex("000000100000000100000001") + b"9012")
        (response,) = harness.received()
        self.assertEqual(response.status, 1)
        self.assertTrue(harness.closing)

    def test_non_ascii_source_addr(self) -> None:
        harness = Harness(accounts={"1002": PASSWORD})
        frame = bytearray(_v1_connect(VERSION_20))
        frame[12:18] = b"1002\x00\xff"
        harness.send_bytes(bytes(frame))
        (response,) = harness.received()
        self.assertEqual(response.status, 3)

    def test_submit_without_destinations_gets_result_1(self) -> None:
        harness = Harness()
        harness.login()
        harness.send_bytes(HEADER.pack(40, 4, 77) + bytes(28))
        (response,) = harness.received()
        self.assertEqual((response.seq, response.result, response.msg_id), (77, 1, 0))
        self.assertFalse(harness.closing)

    def test_unknown_command_skipped(self) -> None:
        harness = Harness()
        harness.login()
        harness.send_bytes(HEADER.pack(16, 0x99, 3) + bytes(4))
        harness.send(ActiveTest(seq=4))
        self.assertEqual(harness.received(), [ActiveTestResp(seq=4)])
        self.assertFalse(harness.closing)

    def test_refused_deliver_resp_counted(self) -> None:
        harness = Harness(VERSION_30)
        harness.login()
        harness.send(DeliverResp(msg_id=1, result=9, seq=1))
        counters = harness.factory.counters(ACCOUNT)
        self.assertEqual(
            (counters.deliver_responses, counters.deliver_responses_refused), (1, 1)
        )
