# test-case-name: tests.test_ratelimit
"""The channel's pacing: the rate, the 100 ms rule, a default for 0, and the pause."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from cmppsvc.ratelimit import CATCH_UP_SECONDS, TokenBucket, window_limit
from cmppsvc.settings import DEFAULT_RATE
from tests.test_connector import ConnectorTestCase


def most_within(times: list[float], span: float) -> int:
    """The most of ``times`` (sorted) within any half-open ``span`` seconds."""
    largest = 0
    start = 0
    for end, moment in enumerate(times):
        while moment - times[start] >= span - 1e-9:
            start += 1
        largest = max(largest, end - start + 1)
    return largest


def run(
    bucket: TokenBucket,
    clock: Clock,
    seconds: float,
    lateness: float = 0.001,
    sending: float = 0.0,
    stalls: tuple[float, float] = (0.0, 0.0),
    seed: int = 7,
    settling: bool = True,
) -> list[float]:
    """Pump like the connector on a reactor; return the time each submit was
    handed over.

    Each turn takes all that is due, spends a random time up to ``sending``
    writing it (then settles), and wakes at the next due time, or after 1 ms when
    something was sent, always late by a random amount up to ``lateness``.
    ``stalls`` is (chance per turn, longest): now and then the turn is late by a
    random amount up to the longest, as after a garbage collection.  Without
    ``settling`` the submits count as handed over when taken.
    """
    draw = random.Random(seed)
    chance, longest = stalls
    handed: list[float] = []
    end = clock.seconds() + seconds
    while clock.seconds() < end:
        granted = bucket.take(10**6)
        if granted and settling:
            clock.advance(draw.uniform(0, sending))
            handed += [clock.seconds()] * granted
            bucket.settle()
        elif granted:
            handed += [clock.seconds()] * granted
            clock.advance(draw.uniform(0, sending))
        wait = 0.001 if granted else max(bucket.delay(), 0.001)
        if draw.random() < chance:
            wait += draw.uniform(0, longest)
        clock.advance(wait + draw.uniform(0, lateness))
    return handed


class RateTests(SynchronousTestCase):
    """Over a simulated run the channel keeps its rate and both of its rules."""

    def check(self, rate: float) -> None:
        # Timers late by up to 0.5 ms, writes taking up to 0.2 ms, and a stall of
        # up to 4 ms in one turn of 500.
        clock = Clock()
        bucket = TokenBucket(rate, clock)
        sent = run(
            bucket, clock, 10.5, lateness=0.0005, sending=0.0002, stalls=(0.002, 0.004)
        )

        measured = [t for t in sent if t - sent[0] < 10]
        self.assertGreaterEqual(len(measured), 0.99 * rate * 10)
        self.assertLessEqual(len(measured), rate * 10 + 1)
        self.assertLessEqual(most_within(sent, 0.1), rate / 10 + 1)
        self.assertLessEqual(most_within(sent, 1.0), rate + 1)

    def test_100_per_second(self) -> None:
        self.check(100)

    def test_1000_per_second(self) -> None:
        self.check(1000)

    def test_5000_per_second(self) -> None:
        self.check(5000)

    def test_low_rate_rounds_the_tenth_down(self) -> None:
        clock = Clock()
        sent = run(TokenBucket(80, clock), clock, 3)
        self.assertLessEqual(most_within(sent, 0.1), 9)
        self.assertEqual(window_limit(80), 9)
        self.assertEqual(window_limit(5000), 501)
        self.assertEqual(window_limit(3), 1)

    def test_smooth_not_bursty(self) -> None:
        # Woken every millisecond, a 5,000/s channel sends about five each time,
        # never a tenth of a second's worth at once.
        clock = Clock()
        bucket = TokenBucket(5000, clock)
        clock.advance(1)
        sizes = []
        for _ in range(1000):
            sizes.append(bucket.take(10**6))
            clock.advance(0.001)
        self.assertLessEqual(max(sizes), 5000 * CATCH_UP_SECONDS + 1)
        # After the first catch-up, at most 2 ms worth at once, even when the
        # 100 ms limit holds some back.
        self.assertLessEqual(max(sizes[10:]), 5000 * 0.002 + 1)

    def test_idle_banks_no_burst(self) -> None:
        clock = Clock()
        bucket = TokenBucket(1000, clock)
        run(bucket, clock, 1)
        clock.advance(10)
        first = bucket.take(10**6)
        self.assertLessEqual(first, 1000 * CATCH_UP_SECONDS + 1)
        sent = [clock.seconds()] * first + run(bucket, clock, 0.5)
        self.assertLessEqual(most_within(sent, 0.1), 101)

    def test_late_pump_catches_up_within_the_tolerance(self) -> None:
        clock = Clock()
        bucket = TokenBucket(1000, clock)
        self.assertEqual(bucket.take(100), 5)  # new: like an idle one
        clock.advance(0.003)
        self.assertEqual(bucket.take(100), 3)  # 3 ms late: nothing lost
        clock.advance(0.5)
        self.assertEqual(bucket.take(100), 5)  # idle: only the tolerance

    def test_rate_far_above_traffic_grants_everything(self) -> None:
        clock = Clock()
        bucket = TokenBucket(10**6, clock)
        for _ in range(1000):
            self.assertEqual(bucket.take(16), 16)
            clock.advance(0.0004)


class WindowRuleTests(SynchronousTestCase):
    """No 100 ms of hand-over times ever holds more than ``rate / 10 + 1``."""

    @settings(max_examples=60, deadline=None)
    @given(
        rate=st.floats(min_value=1, max_value=20000),
        lateness=st.floats(min_value=0, max_value=0.005),
        sending=st.floats(min_value=0, max_value=0.003),
        chance=st.floats(min_value=0, max_value=0.2),
        longest=st.floats(min_value=0, max_value=0.3),
        settling=st.booleans(),
        seed=st.integers(min_value=0, max_value=1000),
    )
    def test_any_rate_timers_writes_and_stalls(
        self,
        rate: float,
        lateness: float,
        sending: float,
        chance: float,
        longest: float,
        settling: bool,
        seed: int,
    ) -> None:
        clock = Clock()
        bucket = TokenBucket(rate, clock)
        handed = run(
            bucket,
            clock,
            1.5,
            lateness=lateness,
            sending=sending,
            stalls=(chance, longest),
            seed=seed,
            settling=settling,
        )
        self.assertLessEqual(most_within(handed, 0.1), window_limit(rate))

    def test_a_slow_write_counts_from_when_it_ended(self) -> None:
        # The first batch takes 4 ms to write: counted from its grant, the sends
        # 100 ms after the grant would share a window with it.
        clock = Clock()
        bucket = TokenBucket(1000, clock)
        first = bucket.take(10**6)
        clock.advance(0.004)
        bucket.settle()
        handed = [clock.seconds()] * first
        handed += run(bucket, clock, 0.3, lateness=0)
        self.assertLessEqual(most_within(handed, 0.1), 101)

    def test_settle_gives_back_the_unused(self) -> None:
        clock = Clock()
        bucket = TokenBucket(1000, clock)
        self.assertEqual(bucket.take(100), 5)
        bucket.settle(2)
        self.assertEqual(bucket.take(100), 2)
        bucket.settle(2)
        self.assertEqual(bucket.take(100), 2)

    def test_settle_after_the_grant_left_the_window(self) -> None:
        # Settling a grant that already aged out of the log changes nothing.
        clock = Clock()
        bucket = TokenBucket(1000, clock)
        granted = bucket.take(10**6)
        clock.advance(0.2)
        self.assertEqual(bucket.delay(), 0.0)
        bucket.settle(granted)
        bucket.settle()
        handed = run(bucket, clock, 1.0, lateness=0.002)
        self.assertLessEqual(most_within(handed, 0.1), 101)
        self.assertGreaterEqual(len(handed), 0.99 * 1000 * 0.99)


class DefaultTests(SynchronousTestCase):
    """0, nothing or nonsense means the documented default; nothing divides by 0."""

    def test_zero_or_missing_rate_is_the_default(self) -> None:
        for rate in (0, None, -3, "x", float("nan")):
            clock = Clock()
            bucket = TokenBucket(rate, clock)
            self.assertEqual(bucket.rate, DEFAULT_RATE)
            self.assertEqual(bucket.take(5), 1)
            self.assertGreater(bucket.delay(), 0)


class ControlTests(SynchronousTestCase):
    """delay, refund, and the adaptive pause on flow control."""

    def test_delay_names_the_next_due_time(self) -> None:
        clock = Clock()
        bucket = TokenBucket(10, clock)
        self.assertEqual(bucket.take(5), 1)
        self.assertAlmostEqual(bucket.delay(), 1 / (10 * 0.995) - CATCH_UP_SECONDS)
        clock.advance(bucket.delay())
        self.assertEqual(bucket.delay(), 0.0)
        self.assertEqual(bucket.take(5), 1)

    def test_refund_gives_the_slot_back(self) -> None:
        clock = Clock()
        bucket = TokenBucket(10, clock)
        self.assertEqual(bucket.take(1), 1)
        bucket.refund(1)
        self.assertEqual(bucket.take(1), 1)
        self.assertEqual(bucket.take(1), 0)

    def test_slow_down_pauses_halves_then_recovers(self) -> None:
        clock = Clock()
        bucket = TokenBucket(100, clock)
        self.assertTrue(bucket.slow_down())
        self.assertEqual(bucket.rate, 50)
        self.assertEqual(bucket.take(1), 0)
        clock.advance(0.05)
        self.assertFalse(bucket.slow_down())  # same episode: no second halving
        self.assertEqual(bucket.rate, 50)
        self.assertEqual(bucket.flow_control_episodes, 1)
        clock.advance(0.099)
        self.assertEqual(bucket.take(1), 0)
        clock.advance(0.001)
        self.assertEqual(bucket.take(1), 1)
        for _ in range(10):
            clock.advance(1)
            bucket.take(1)
        self.assertEqual(bucket.rate, 100)

    def test_never_below_minimum(self) -> None:
        clock = Clock()
        bucket = TokenBucket(3, clock)
        for _ in range(10):
            bucket.slow_down()
            clock.advance(0.6)
        self.assertEqual(bucket.rate, 1.0)


class SharedTests(ConnectorTestCase):
    """One limiter for the channel: two connections together keep its rate."""

    def test_two_connections_share_the_rate(self) -> None:
        self.start(rate=200, connections=2)
        for gateway in self.endpoint.gateways:
            gateway.login()
        for _ in range(300):
            self.submit()

        sent_at: list[float] = []
        per_connection = [0, 0]
        for _ in range(1000):  # one second in 1 ms reactor turns
            for index, gateway in enumerate(self.endpoint.gateways):
                count = len(self.answer(gateway))
                per_connection[index] += count
                sent_at += [self.clock.seconds()] * count
            self.clock.advance(0.001)

        sent_at.sort()
        self.assertLessEqual(most_within(sent_at, 0.1), 200 / 10 + 1)
        self.assertLessEqual(len(sent_at), 200 + 1)
        self.assertGreaterEqual(len(sent_at), 0.99 * 200 * 0.99)
        self.assertGreater(min(per_connection), 80)
