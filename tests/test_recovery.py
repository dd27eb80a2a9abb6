# Tests for cmppsvc.recovery: the restart policy and what a start found.
import types

from twisted.trial.unittest import SynchronousTestCase

from cmppsvc.recovery import RESEND, UNKNOWN, Recovered, channel_policy


def config(**fields):
    return types.SimpleNamespace(channel_id="c1", **fields)


class PolicyTests(SynchronousTestCase):
    """The record field restartPolicy, already validated by the config parser."""

    def test_default_is_resend(self):
        self.assertEqual(channel_policy(config()), RESEND)
        self.assertEqual(channel_policy(config(restart_policy="")), RESEND)

    def test_unknown_policy(self):
        self.assertEqual(channel_policy(config(restart_policy="unknown")), UNKNOWN)

    def test_a_policy_not_understood_falls_back_to_resend(self):
        self.assertEqual(channel_policy(config(restart_policy="drop")), RESEND)


class RecoveredTests(SynchronousTestCase):
    """Entries found in the in-flight hash at start."""

    def test_take_and_count(self):
        recovered = Recovered(
            {"1-0": {0: {"done": 1}, 1: {"seq": 3}}, "2-0": {0: {"seq": 4}}}
        )
        self.assertEqual(len(recovered), 2)
        self.assertEqual(recovered.in_flight_count(), 2)
        self.assertEqual(recovered.take("1-0"), {0: {"done": 1}, 1: {"seq": 3}})
        self.assertIsNone(recovered.take("1-0"))
        self.assertEqual(recovered.entry_ids(), ["2-0"])

    def test_bad_policy_refused(self):
        self.assertRaises(ValueError, Recovered, {}, "drop")
