"""A token bucket on the injected clock that paces a channel's SUBMIT PDUs.

Operators provision each account with a rate and answer "flow control" (SUBMIT_RESP
Result 8) to anything faster, so the channel paces itself: one token per SUBMIT PDU (a
long message of three segments takes three), tokens refilled continuously at the rate.

Smoothness: the bucket starts with ``max(1, rate * burst_seconds)`` tokens, 10 ms
worth by default, and holds one spare token more.  That lets a fast channel fill its
window in one reactor turn instead of one submit per turn (reactor timers are only
about 1 ms fine, too coarse to space 5,000 submits a second one by one).  A bucket
alone would allow its burst on top of ``rate / 10`` in some 100 ms, so the grants of
the last 100 ms are counted too and kept to ``ceil(rate / 10)``: in any 100 ms of
grants the channel sends at most ``rate / 10 + 1`` submits, at every rate, and the
long-run rate is still ``rate``.  (Seen at the gateway, delivery jitter can still
bunch a few more into one 100 ms: see bench/rate.py.)

Adaptive pause: ``slow_down()`` (called on Result 8) halves the rate in use and empties
the bucket with a short debt, so nothing is sent for a moment; the rate then recovers
by a quarter every second without flow control until it is back at the configured one.
"""

from __future__ import annotations

import math
from collections import deque

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

SPARE_TOKENS = 1.0
"""Room in the bucket above its burst, so a timer that fires late carries the
lateness over instead of losing it: with room for one token only, a channel of 100/s
woken 0.8 ms late each time would send 8% below its rate.  The window count below
keeps the 100 ms rule."""

WINDOW_SECONDS = 0.1
"""The span over which sends are counted against ``ceil(rate * WINDOW_SECONDS)``."""


def window_limit(rate: float) -> int:
    """How many submits ``rate`` allows in any ``WINDOW_SECONDS``: at least one."""
    # Rounded first: 5000 * 0.1 is 500.00000000000006 in floating point.
    return max(1, math.ceil(round(rate * WINDOW_SECONDS, 6)))


class TokenBucket:
    """Paces submits at ``rate`` per second on ``clock``, shared by all connections."""

    def __init__(
        self, rate: float, clock: IReactorTime, burst_seconds: float = 0.01
    ) -> None:
        self.configured_rate = channel_rate(rate)
        self.rate = self.configured_rate
        self._clock = clock
        self._burst_seconds = burst_seconds
        self._tokens = max(1.0, self.rate * burst_seconds)
        self._capacity = self._tokens + SPARE_TOKENS
        self._stamp = clock.seconds()
        self._last_flow_control = float("-inf")
        self._last_change = self._stamp
        self.flow_control_episodes = 0
        self._limit = window_limit(self.rate)
        self._grants: deque[list] = deque()  # [clock seconds, count], oldest first
        self._in_window = 0

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
        self._capacity = max(1.0, rate * self._burst_seconds) + SPARE_TOKENS
        self._tokens = min(self._tokens, self._capacity)
        self._limit = window_limit(rate)
        self._last_change = now

    def _room(self, now: float) -> int:
        """How many more grants the last ``WINDOW_SECONDS`` allow at ``now``."""
        grants = self._grants
        # A nanosecond of slack, so a timer set for the exact expiry is never
        # early by a floating-point rounding error.
        horizon = now - WINDOW_SECONDS + 1e-9
        while grants and grants[0][0] <= horizon:
            self._in_window -= grants.popleft()[1]
        return self._limit - self._in_window

    def take(self, wanted: int) -> int:
        """Take up to ``wanted`` tokens now; return how many were granted."""
        now = self._clock.seconds()
        self._refill(now)

        if self._tokens < 1.0:
            return 0
        granted = min(wanted, int(self._tokens), self._room(now))
        if granted <= 0:
            return 0

        self._tokens -= granted
        self._in_window += granted
        grants = self._grants
        if grants and grants[-1][0] == now:
            grants[-1][1] += granted
        else:
            grants.append([now, granted])
        return granted

    def refund(self, count: int) -> None:
        """Give back tokens taken (by the last ``take``) for submits not sent."""
        self._tokens = min(self._capacity, self._tokens + count)
        grants = self._grants
        if grants:
            returned = min(count, grants[-1][1])
            grants[-1][1] -= returned
            self._in_window -= returned

    def delay(self) -> float:
        """Seconds until at least one token is available (0 when one is now)."""
        now = self._clock.seconds()
        self._refill(now)

        wait = max(0.0, 1.0 - self._tokens) / self.rate
        if self._room(now) <= 0:
            # The oldest grant must leave the window first.
            wait = max(wait, self._grants[0][0] + WINDOW_SECONDS - now)
        return wait

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
