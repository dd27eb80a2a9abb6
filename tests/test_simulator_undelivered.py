# test-case-name: tests.test_simulator_undelivered
"""Status reports unsent or unanswered when a connection ends reach the account's
next connection, within a cap per account."""

from twisted.internet.error import ConnectionDone
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from cmppsvc.codec import (
    VERSION_20,
    VERSION_30,
    ConnectResp,
    Deliver,
    DeliverResp,
    SubmitResp,
)
from cmppsvc.simulator import Behaviour
from cmppsvc.simulator.undelivered import UndeliveredReports
from tests.test_simulator_support import ACCOUNT, PASSWORD, Harness

OTHER_ACCOUNT = "905678"
OTHER_PASSWORD = "Other#2024"
REPORT_DELAY = 0.1


def _harness(version: int = VERSION_20, **behaviour: object) -> Harness:
    behaviour.setdefault("report_delay", REPORT_DELAY)
    harness = Harness(
        version,
        Behaviour(**behaviour),
        accounts={ACCOUNT: PASSWORD, OTHER_ACCOUNT: OTHER_PASSWORD},
    )
    harness.login()
    return harness


def _submit(harness: Harness, *destinations: str) -> int:
    """Send one SUBMIT asking for reports; return the Msg_Id answered."""
    harness.send(harness.submit(*destinations))
    (response,) = harness.received()
    assert isinstance(response, SubmitResp) and response.result == 0
    return response.msg_id


def _relogin(
    harness: Harness,
    account: str = ACCOUNT,
    password: str = PASSWORD,
    wait: float = REPORT_DELAY,
) -> list:
    """A new connection logs in; the PDUs after its CONNECT_RESP, until
    ``wait`` seconds later."""
    harness.connect()
    harness.send(harness.connect_pdu(password, account))
    harness.clock.advance(wait)
    response, *rest = harness.received()
    assert isinstance(response, ConnectResp) and response.status == 0
    return rest


def _reported(pdus: list) -> list[int]:
    """The Msg_Ids the report DELIVERs among ``pdus`` are about."""
    return [pdu.report.msg_id for pdu in pdus if isinstance(pdu, Deliver)]


def _answer(harness: Harness, *delivers: Deliver) -> None:
    harness.send(
        *(DeliverResp(msg_id=pdu.msg_id, result=0, seq=pdu.seq) for pdu in delivers)
    )


class KeptAcrossConnectionsTests(SynchronousTestCase):
    """What one connection leaves behind, a later one of the account sends."""

    def test_queued_reports_reach_next_connection(self) -> None:
        harness = _harness()
        msg_id = _submit(harness, "13800138000", "13800138001")
        harness.lose()  # before the report delay: both reports still queued

        resent = _relogin(harness)
        self.assertEqual(_reported(resent), [msg_id, msg_id + 1])
        self.assertEqual(
            [pdu.report.dest_terminal_id for pdu in resent],
            ["13800138000", "13800138001"],
        )
        counters = harness.factory.counters(ACCOUNT)
        self.assertEqual((counters.reports_kept, counters.reports_resent), (2, 2))

        # Once answered there, they are settled: a third connection gets none.
        _answer(harness, *resent)
        harness.lose()
        self.assertEqual(_relogin(harness), [])

    def test_report_not_due_yet_keeps_its_time(self) -> None:
        harness = _harness(report_delay=10.0)
        msg_id = _submit(harness)
        harness.clock.advance(4.0)
        harness.lose()

        self.assertEqual(_relogin(harness, wait=0), [])
        harness.clock.advance(5.9)
        self.assertEqual(harness.received(), [])
        harness.clock.advance(0.1)
        self.assertEqual(_reported(harness.received()), [msg_id])

    def test_unanswered_reports_are_resent_answered_are_not(self) -> None:
        harness = _harness()
        first = _submit(harness)
        second = _submit(harness)
        harness.clock.advance(REPORT_DELAY)
        written = harness.received()
        self.assertEqual(_reported(written), [first, second])
        _answer(harness, written[0])
        harness.lose()

        (resent,) = _relogin(harness)
        self.assertEqual(resent.report.msg_id, second)
        # The same DELIVER (same Msg_Id), numbered by the new connection.
        self.assertEqual(resent.msg_id, written[1].msg_id)
        self.assertEqual(resent.seq, 1)

    def test_reports_of_a_submit_never_answered_are_not_kept(self) -> None:
        harness = _harness()
        harness.factory.behaviour.response_delay = 1.0
        harness.send(harness.submit())
        harness.lose()  # before the SUBMIT_RESP was written

        harness.factory.behaviour.response_delay = 0
        self.assertEqual(_relogin(harness), [])

    def test_reports_of_a_late_answer_are_kept_once_answered(self) -> None:
        harness = _harness()
        harness.factory.behaviour.response_delay = 1.0
        harness.send(harness.submit())
        harness.clock.advance(1.0)
        (response,) = harness.received()
        harness.lose()  # before the report delay

        harness.factory.behaviour.response_delay = 0
        self.assertEqual(_reported(_relogin(harness)), [response.msg_id])

    def test_not_another_accounts_connection(self) -> None:
        harness = _harness()
        msg_id = _submit(harness)
        harness.lose()

        self.assertEqual(_relogin(harness, OTHER_ACCOUNT, OTHER_PASSWORD), [])
        harness.clock.advance(REPORT_DELAY * 10)
        self.assertEqual(harness.received(), [])
        harness.lose()

        self.assertEqual(_reported(_relogin(harness)), [msg_id])

    def test_another_live_connection_gets_them_at_once(self) -> None:
        harness = _harness()
        msg_id = _submit(harness)
        closing = harness.protocol
        self.assertEqual(_relogin(harness), [])

        closing.connectionLost(Failure(ConnectionDone()))
        harness.clock.advance(REPORT_DELAY)
        self.assertEqual(_reported(harness.received()), [msg_id])

    def test_kept_from_20_resent_in_30(self) -> None:
        harness = _harness(VERSION_20)
        msg_id = _submit(harness, "13800138000")
        harness.lose()

        harness.version = VERSION_30
        (resent,) = _relogin(harness)
        self.assertEqual(
            (resent.report.msg_id, resent.report.dest_terminal_id, resent.seq),
            (msg_id, "13800138000", 1),
        )

    def test_injected_report_unanswered_is_kept(self) -> None:
        harness = _harness()
        harness.factory.inject_report(1234, "13800138000", stat="EXPIRED")
        harness.received()
        harness.lose()

        (resent,) = _relogin(harness)
        self.assertEqual((resent.report.msg_id, resent.report.stat), (1234, "EXPIRED"))

    def test_mo_is_not_kept(self) -> None:
        harness = _harness()
        harness.factory.inject_mo("13800138000", "hi")
        harness.lose()
        self.assertEqual(_relogin(harness), [])


class CapTests(SynchronousTestCase):
    """The reports kept per account are bounded; the oldest go, logged."""

    def setUp(self) -> None:
        self.events: list[dict] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def _dropped_events(self) -> list[dict]:
        return [event for event in self.events if "dropped" in event]

    def test_oldest_dropped_beyond_cap(self) -> None:
        harness = _harness(kept_reports_per_account=2)
        msg_id = _submit(harness, "13800138000", "13800138001", "13800138002")
        harness.lose()

        self.assertEqual(_reported(_relogin(harness)), [msg_id + 1, msg_id + 2])
        counters = harness.factory.counters(ACCOUNT)
        self.assertEqual((counters.reports_kept, counters.reports_dropped), (2, 1))
        (event,) = self._dropped_events()
        self.assertEqual(
            (event["dropped"], event["account"], event["cap"]), (1, ACCOUNT, 2)
        )
        self.assertNotIn(PASSWORD, repr(self.events))

    def test_cap_applies_to_what_closed_connections_leave(self) -> None:
        harness = _harness(kept_reports_per_account=2)
        first = _submit(harness, "13800138000", "13800138001")
        closing = harness.protocol
        _relogin(harness)
        second = _submit(harness, "13800138000", "13800138001")
        closing.connectionLost(Failure(ConnectionDone()))  # its 2 move over
        harness.received()
        del self.events[:]
        harness.lose()  # 4 unanswered, 2 kept

        self.assertEqual(_reported(_relogin(harness)), [second, second + 1])
        self.assertNotEqual(first, second)
        (event,) = self._dropped_events()
        self.assertEqual(
            (event["dropped"], event["account"], event["cap"]), (2, ACCOUNT, 2)
        )

    def test_resent_reports_count_toward_the_cap(self) -> None:
        harness = _harness(kept_reports_per_account=2)
        _submit(harness)
        harness.lose()
        self.assertEqual(len(_relogin(harness)), 1)  # resent, left unanswered
        second = _submit(harness)
        third = _submit(harness)
        harness.lose()

        self.assertEqual(_reported(_relogin(harness)), [second, third])

    def test_unanswering_peer_bounded_during_connection(self) -> None:
        harness = _harness(kept_reports_per_account=2, report_delay=0)
        msg_ids = []
        for _ in range(5):
            harness.send(harness.submit())
            response, report = harness.received()
            msg_ids.append(response.msg_id)
        self.assertEqual(len(harness.protocol.unanswered_reports), 2)
        harness.lose()

        self.assertEqual(_reported(_relogin(harness)), msg_ids[-2:])
        self.assertEqual(harness.factory.counters(ACCOUNT).reports_dropped, 3)

    def test_zero_keeps_none(self) -> None:
        harness = _harness(kept_reports_per_account=0)
        _submit(harness)
        harness.lose()
        self.assertEqual(_relogin(harness), [])


class StoreTests(SynchronousTestCase):
    """UndeliveredReports on its own."""

    def test_keep_and_take(self) -> None:
        store = UndeliveredReports()
        self.assertEqual(store.keep("a", VERSION_20, [(0, b"1"), (0, b"2")], 3), (2, 0))
        self.assertEqual(store.keep("a", VERSION_30, [(0, b"3"), (5, b"4")], 3), (2, 1))
        self.assertEqual(store.count("a"), 3)
        self.assertEqual(store.take("b"), [])
        self.assertEqual(
            store.take("a"),
            [(VERSION_20, 0, b"2"), (VERSION_30, 0, b"3"), (VERSION_30, 5, b"4")],
        )
        self.assertEqual(store.take("a"), [])
