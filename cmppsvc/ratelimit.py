"""A token bucket on the injected clock that paces a channel's SUBMIT PDUs.

Operators provision each account with a rate and answer "flow control" (SUBMIT_RESP
Result 8) to anything faster, so the channel paces itself: one token per SUBMIT PDU (a
long message of three segments takes three), tokens refilled continuously at the rate.

Smoothness: the bucket holds at most ``max(1, rate * burst_seconds)`` tokens, 10 ms
worth by default, so in any 100 ms the channel sends at most
``max(1, rate / 100) + rate / 10`` submits; for the usual contracted rates (up to
100/s) that is ``rate / 10 + 1``.  The 10 ms burst lets a fast channel fill its window
in one reactor turn instead of one submit per turn.

Adaptive pause: ``slow_down()`` (called on Result 8) halves the rate in use and empties
the bucket with a short debt, so nothing is sent for a moment; the rate then recovers
by a quarter every second without flow control until it is back at the configured one.
"""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime

from cmppsvc.settings import channel_rate

PAUSE_SECONDS = 0.1
"""How long nothing is sent after a flow-control answer."""

EPISODE_SECONDS = 0.5
"""Flow-control answers closer together than this are one episode: the rate is halved
once for them, not once per answer (a full window answered 8 would else divide the
rate by 2**16)."""

RECOVERY_SECONDS = 1.0
"""After this long without flow control the rate in use grows by ``RECOVERY_FACTOR``."""

RECOVERY_FACTOR = 1.25

MINIMUM_RATE = 1.0
"""Flow control never slows a channel below one submit per second."""


class TokenBucket:
    """Paces submits at ``rate`` per second on ``clock``, shared by all connections."""

    def __init__(
        self, rate: float, clock: IReactorTime, burst_seconds: float = 0.01
    ) -> None:
        self.configured_rate = channel_rate(rate)
        self.rate = self.configured_rate
        self._clock = clock
        self._burst_seconds = burst_seconds
        self._capacity = max(1.0, self.rate * burst_seconds)
        self._tokens = self._capacity
        self._stamp = clock.seconds()
        self._last_flow_control = float("-inf")
        self._last_change = self._stamp
        self.flow_control_episodes = 0

    def _refill(self, now: float) -> None:
        """Add the tokens earned since the last look, and let the rate recover."""
        if self.rate < self.configured_rate and now - self._last_change >= (
            RECOVERY_SECONDS
        ):
            self._set_rate(min(self.configured_rate, self.rate * RECOVERY_FACTOR), now)

        elapsed = now - self._stamp
        if elapsed > 0:
            self._tokens = min(self._capacity, self._tokens + elapsed * self.rate)
            self._stamp = now

    def _set_rate(self, rate: float, now: float) -> None:
        """Change the rate in use, and the bucket size with it."""
        self.rate = rate
        self._capacity = max(1.0, rate * self._burst_seconds)
        self._tokens = min(self._tokens, self._capacity)
        self._last_change = now

    def take(self, wanted: int) -> int:
        """Take up to ``wanted`` tokens now; return how many were granted."""
        now = self._clock.seconds()
        self._refill(now)

        if self._tokens < 1.0:
            return 0
        granted = min(wanted, int(self._tokens))
        self._tokens -= granted
        return granted

    def refund(self, count: int) -> None:
        """Give back tokens taken for submits that were not sent after all."""
        self._tokens = min(self._capacity, self._tokens + count)

    def delay(self) -> float:
        """Seconds until at least one token is available (0 when one is now)."""
        now = self._clock.seconds()
        self._refill(now)

        missing = 1.0 - self._tokens
        if missing <= 0:
            return 0.0
        return missing / self.rate

    def slow_down(self) -> bool:
        """React to a flow-control answer; True when this began a new episode."""
        now = self._clock.seconds()
        self._refill(now)

        new_episode = now - self._last_flow_control >= EPISODE_SECONDS
        if new_episode:
            self._last_flow_control = now
            self.flow_control_episodes += 1
            self._set_rate(max(MINIMUM_RATE, self.rate / 2), now)
        else:
            self._last_change = now

        # Pause: whatever the bucket held is gone, and a short debt is owed.
        self._tokens = -self.rate * PAUSE_SECONDS
        return new_episode
