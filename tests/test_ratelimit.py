# test-case-name: tests.test_ratelimit
"""The token bucket: smooth pacing, a default for 0, and the adaptive pause."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from cmppsvc.ratelimit import TokenBucket
from cmppsvc.settings import DEFAULT_RATE


class TokenBucketTests(SynchronousTestCase):
    """Tokens are earned continuously on the injected clock."""

    def test_no_more_than_a_tenth_plus_one_per_100ms(self) -> None:
        clock = Clock()
        bucket = TokenBucket(80, clock)
        sent: list[float] = []
        for _ in range(3000):
            sent += [clock.seconds()] * bucket.take(1000)
            clock.advance(0.001)
        for start in sent:
            window = [t for t in sent if start <= t < start + 0.1]
            self.assertLessEqual(len(window), 80 / 10 + 1)
        self.assertGreaterEqual(len(sent), 220)

    def test_fast_rate_allows_small_bursts(self) -> None:
        clock = Clock()
        bucket = TokenBucket(45000, clock)
        self.assertEqual(bucket.take(1000), 450)
        clock.advance(0.001)
        self.assertEqual(bucket.take(1000), 45)

    def test_zero_or_missing_rate_is_the_default(self) -> None:
        for rate in (0, None, -3, "x"):
            self.assertEqual(TokenBucket(rate, Clock()).rate, DEFAULT_RATE)

    def test_delay_names_next_token(self) -> None:
        clock = Clock()
        bucket = TokenBucket(10, clock)
        self.assertEqual(bucket.take(5), 1)
        self.assertAlmostEqual(bucket.delay(), 0.1)
        clock.advance(0.1)
        self.assertEqual(bucket.delay(), 0.0)

    def test_slow_down_pauses_halves_then_recovers(self) -> None:
        clock = Clock()
        bucket = TokenBucket(100, clock)
        self.assertTrue(bucket.slow_down())
        self.assertEqual(bucket.rate, 50)
        self.assertEqual(bucket.take(1), 0)
        clock.advance(0.1)
        self.assertFalse(bucket.slow_down())  # same episode: no second halving
        self.assertEqual(bucket.rate, 50)
        clock.advance(0.11)
        self.assertEqual(bucket.take(1), 0)
        clock.advance(0.01)
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

    def test_fast_rate_keeps_the_100ms_rule_and_the_rate(self) -> None:
        clock = Clock()
        bucket = TokenBucket(5000, clock)
        sent: list[tuple[float, int]] = []
        for _ in range(2000):  # two seconds in 1 ms reactor turns
            granted = bucket.take(1000)
            if granted:
                sent.append((clock.seconds(), granted))
            clock.advance(0.001)
        for start, _ in sent:
            in_window = sum(n for t, n in sent if start <= t < start + 0.1 - 1e-9)
            self.assertLessEqual(in_window, 5000 / 10 + 1)
        total = sum(n for _, n in sent)
        self.assertGreaterEqual(total, 0.99 * 5000 * 2)

    def test_refund_frees_the_window(self) -> None:
        clock = Clock()
        bucket = TokenBucket(10, clock)
        self.assertEqual(bucket.take(1), 1)
        bucket.refund(1)
        self.assertEqual(bucket.take(1), 1)
