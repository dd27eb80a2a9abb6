# Tests for cmppsvc.redisrestart: when a crashed private Redis is started again.
"""The restart schedule on a Clock, with a fake start that succeeds or fails."""

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from cmppsvc.redisrestart import RESTART_DELAY, STABLE_UPTIME, RestartSchedule


class FakeStarts:
    """A `start` callable: each call returns a Deferred the test fires."""

    def __init__(self):
        self.calls: list[defer.Deferred] = []

    def __call__(self) -> defer.Deferred:
        starting: defer.Deferred = defer.Deferred()
        self.calls.append(starting)
        return starting


class RestartScheduleTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.starts = FakeStarts()
        self.schedule = RestartSchedule(self.starts, self.clock, port=6399)
        self.schedule.running()

    def wait_for_restart(self) -> float:
        """Advance the clock to the pending restart; the seconds waited."""
        (pending,) = self.clock.getDelayedCalls()
        waited = pending.getTime() - self.clock.seconds()
        self.clock.advance(waited)
        return waited

    def test_delay_doubles_from_half_a_second_to_thirty(self):
        self.assertEqual(
            [RESTART_DELAY(attempt) for attempt in range(9)],
            [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0],
        )

    def test_exit_restarts_after_the_first_delay(self):
        self.schedule.exited()
        self.clock.advance(0.49)
        self.assertEqual(len(self.starts.calls), 0)

        self.clock.advance(0.01)
        self.assertEqual(len(self.starts.calls), 1)
        self.assertFalse(self.schedule.pending)

    def test_failed_starts_wait_longer_each_time_bounded(self):
        self.schedule.exited()
        waited = []
        for _ in range(8):
            waited.append(self.wait_for_restart())
            self.starts.calls[-1].errback(RuntimeError("port taken"))

        self.assertEqual(waited, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0])
        self.assertTrue(self.schedule.pending)

    def test_a_server_dying_soon_after_its_restart_waits_longer(self):
        self.schedule.exited()
        self.clock.advance(0.5)
        self.starts.calls[-1].callback(None)

        self.clock.advance(1.0)
        self.schedule.exited()
        self.clock.advance(0.5)
        self.assertEqual(len(self.starts.calls), 1)
        self.clock.advance(0.5)
        self.assertEqual(len(self.starts.calls), 2)

    def test_a_server_that_ran_long_enough_restarts_at_the_first_delay(self):
        for _ in range(3):
            self.schedule.exited()
            self.wait_for_restart()
            self.starts.calls[-1].callback(None)

        self.clock.advance(STABLE_UPTIME)
        self.schedule.exited()
        self.clock.advance(0.5)
        self.assertEqual(len(self.starts.calls), 4)

    def test_stop_drops_a_waiting_restart(self):
        self.schedule.exited()
        self.schedule.stop()

        self.clock.advance(3600)
        self.assertEqual(self.starts.calls, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_nothing_after_stop(self):
        self.schedule.exited()
        self.clock.advance(0.5)
        self.schedule.stop()
        self.starts.calls[-1].errback(RuntimeError("stopped while starting"))
        self.schedule.exited()

        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(len(self.starts.calls), 1)

    def test_a_second_exit_while_waiting_is_one_restart(self):
        self.schedule.exited()
        self.schedule.exited()
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
