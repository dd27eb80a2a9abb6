# test-case-name: tests.test_simulator_behaviour
"""The simulator's misbehaviours, each on its own, on a Clock."""

from twisted.trial.unittest import SynchronousTestCase

from cmppsvc.codec import (
    VERSION_20,
    VERSION_30,
    ActiveTest,
    ActiveTestResp,
    SubmitResp,
    Terminate,
    TerminateResp,
)
from cmppsvc.simulator import Behaviour
from tests.test_simulator_support import ACCOUNT, Harness


def _logged_in(version: int = VERSION_20, **behaviour: object) -> Harness:
    harness = Harness(version, Behaviour(**behaviour))
    harness.login()
    return harness


class MisbehaviourTests(SynchronousTestCase):
    """Each setting of Behaviour does what the integration tests rely on."""

    def test_slow_login_and_submit(self) -> None:
        harness = Harness(behaviour=Behaviour(response_delay=2.0, report_delay=0.5))
        harness.send(harness.connect_pdu())
        self.assertEqual(harness.received(), [])
        harness.clock.advance(2.0)
        (connect_resp,) = harness.received()
        self.assertEqual(connect_resp.status, 0)

        harness.send(harness.submit())
        harness.clock.advance(1.9)
        self.assertEqual(harness.received(), [])
        harness.clock.advance(0.1)
        self.assertEqual([type(pdu) for pdu in harness.received()], [SubmitResp])
        harness.clock.advance(0.5)
        (report,) = harness.received()
        self.assertEqual(report.report.stat, "DELIVRD")

    def test_drop_with_full_window(self) -> None:
        harness = _logged_in(drop_with_full_window=3)
        harness.send(harness.submit(), harness.submit())
        harness.send(ActiveTest(seq=99))
        self.assertEqual(harness.received(), [ActiveTestResp(seq=99)])
        self.assertFalse(harness.closing)

        harness.send(harness.submit())
        self.assertEqual(harness.received(), [])
        self.assertTrue(harness.closing)
        counters = harness.factory.counters(ACCOUNT)
        self.assertEqual(counters.submits_unanswered, 3)
        self.assertEqual(
            [record.result for record in harness.factory.submits], [None] * 3
        )

    def test_flow_control(self) -> None:
        harness = _logged_in(flow_control_rate=2, report_delay=0)
        harness.send(*(harness.submit(registered_delivery=0) for _ in range(3)))
        self.assertEqual([pdu.result for pdu in harness.received()], [0, 0, 8])

        harness.clock.advance(1)
        harness.send(harness.submit(registered_delivery=0))
        self.assertEqual([pdu.result for pdu in harness.received()], [0])
        self.assertEqual(harness.factory.counters(ACCOUNT).flow_controlled, 1)

    def test_flow_control_counts_destinations(self) -> None:
        harness = _logged_in(flow_control_rate=2, report_delay=0)
        harness.send(harness.submit("1", "2", "3", registered_delivery=0))
        (response,) = harness.received()
        self.assertEqual((response.result, response.msg_id), (8, 0))

    def test_ignore_heartbeats(self) -> None:
        harness = _logged_in(ignore_heartbeats=True)
        harness.send(ActiveTest(seq=5))
        self.assertEqual(harness.received(), [])
        counters = harness.factory.counters(ACCOUNT)
        self.assertEqual(
            (counters.active_tests_received, counters.active_tests_ignored), (1, 1)
        )

    def test_terminate_after_submits(self) -> None:
        harness = _logged_in(VERSION_30, terminate_after_submits=2, report_delay=0)
        harness.send(harness.submit(registered_delivery=0))
        self.assertEqual([type(pdu) for pdu in harness.received()], [SubmitResp])
        harness.send(harness.submit(registered_delivery=0))
        response, terminate = harness.received()
        self.assertIsInstance(terminate, Terminate)
        self.assertFalse(harness.closing)

        harness.send(TerminateResp(seq=terminate.seq))
        self.assertTrue(harness.closing)

    def test_terminate_after_seconds_then_timeout(self) -> None:
        harness = _logged_in(terminate_after_seconds=30, terminate_timeout=5)
        harness.clock.advance(29)
        self.assertEqual(harness.received(), [])
        harness.clock.advance(1)
        (terminate,) = harness.received()
        self.assertIsInstance(terminate, Terminate)
        harness.clock.advance(5)
        self.assertTrue(harness.closing)
        self.assertEqual(harness.factory.counters(ACCOUNT).terminates_sent, 1)

    def test_submit_result(self) -> None:
        harness = _logged_in(submit_result=13, report_delay=0)
        harness.send(harness.submit())
        (response,) = harness.received()
        self.assertEqual(response.result, 13)
        self.assertEqual(harness.factory.counters(ACCOUNT).submits_refused, 1)

    def test_report_stat(self) -> None:
        harness = _logged_in(report_stat="UNDELIV", report_delay=0)
        harness.send(harness.submit())
        _, report = harness.received()
        self.assertEqual(report.report.stat, "UNDELIV")

    def test_own_heartbeat(self) -> None:
        harness = _logged_in(heartbeat_interval=10)
        harness.clock.advance(10)
        (active_test,) = harness.received()
        self.assertIsInstance(active_test, ActiveTest)
        harness.send(ActiveTestResp(seq=active_test.seq))
        self.assertEqual(harness.factory.counters(ACCOUNT).active_test_responses, 1)
        harness.lose()
        self.assertEqual(harness.clock.getDelayedCalls(), [])

    def test_change_while_connected(self) -> None:
        harness = _logged_in(report_delay=0)
        harness.factory.behaviour.submit_result = 8
        harness.send(harness.submit())
        self.assertEqual([pdu.result for pdu in harness.received()], [8])

    def test_negative_setting_refused(self) -> None:
        self.assertRaises(ValueError, Behaviour, report_delay=-1)
