# -*- test-case-name: tests.test_ratelimit,tests.test_connector -*-
"""A channel's SUBMIT pacing: a schedule of due times on the injected clock (GCRA).

Operators provision each account with a rate and answer "flow control" (SUBMIT_RESP
Result 8) to anything faster.  The gateway's rule, as this module keeps it: counted
per SUBMIT PDU (a long message of three segments is three), for the whole channel
(every connection shares one limiter), at most ``rate`` a second and at most
``rate / 10 + 1`` in any 100 ms.

The rule, as implemented (the virtual-scheduling form of a token bucket, GCRA):

- Submit ``k`` of the channel is due at ``due_k = due_(k-1) + 1 / pace``, where
  ``pace = rate * (1 - HEADROOM)``.  Nothing goes before it is due: the submits that
  are due are released whenever the connector pumps (a SUBMIT_RESP freed a slot, a
  new submit came, or the one timer set for the next due time fired), so the sends
  follow the schedule and never come in bursts of more than what fell due since the
  last pump.
- A pump that comes late may catch up on what fell due meanwhile, but only within
  ``CATCH_UP_SECONDS`` (5 ms): a schedule further behind than that (an idle channel,
  a stalled reactor) restarts that far behind ``now``.  So idle time banks no
  credit, a timer late by a millisecond or two (the reactor's usual) costs no
  throughput, and, with the headroom below, no second ever holds more than
  ``rate + 1``: the schedule puts at most ``pace * (1 + CATCH_UP_SECONDS) + 1`` in
  any second, and ``0.995 * 1.005 < 1``.
- The 100 ms rule holds by construction, on the moments the submits are handed
  over: the limiter keeps a log of its grants, oldest first, and grants only what
  leaves at most ``window_limit(rate) = floor(rate / 10 + 1)`` in the log's last
  ``WINDOW_SECONDS`` (the oldest of the last ``window_limit`` grants is at least
  100 ms old).  A grant is logged at the clock time of ``take``; ``settle``, called
  once the granted submits are written, moves it to that later time and gives back
  what was not sent.  As every grant is checked at a time no later than when its
  submits are handed over, and every earlier one is logged no earlier than when its
  submits were, no 100 ms of hand-over times holds more than the limit, however
  long the sending took (a caller that never settles gets the rule on the times of
  ``take``).  The schedule puts ``pace / 10`` in a 100 ms; only a catch-up after a
  late pump reaches the limit.  What the limit then holds back is kept for the next
  pump only up to ``HELD_SECONDS`` (1 ms) worth and otherwise dropped from the
  schedule: saved up, it would go out in one batch when the oldest sends age out,
  and again 100 ms later, a burst repeating every 100 ms.
- What it cannot hold: the gateway counts arrivals, and a stall of ``d`` seconds in
  either process or on the way (a garbage collection, the scheduler) delays some
  submits and not the ones after them, which can put up to ``d * rate`` more in
  one 100 ms at the gateway.

Why the headroom: the schedule puts ``pace / 10`` submits in every 100 ms, and the
gateway counts arrivals, which the network and its own reactor bunch together.  At
exactly ``rate`` there is one submit of margin per 100 ms, 0.2 ms of jitter at
5,000/s; pacing 0.5% under the rate leaves ``rate / 2000`` more (0.7 ms at 5,000/s,
1.5 ms at 1,000/s), and the achieved rate is still within 1% of the configured one.
A stall longer than the catch-up is lost throughput: the two rules allow making up
for it only at the headroom's speed.

Cost: each ``take`` and ``settle`` is a handful of float operations and at most
one deque append, however many it grants, so a channel whose rate is far above
its traffic pays next to nothing for the limiter.

Adaptive pause: ``slow_down()`` (called on Result 8) halves the rate in use and
moves the schedule ``PAUSE_SECONDS`` ahead, so nothing is sent for a moment; the
rate then recovers by a quarter every second without flow control until it is back
at the configured one.
"""

from __future__ import annotations

import math
from collections import deque

from twisted.internet.interfaces import IReactorTime

from cmppsvc.settings import channel_rate

HEADROOM = 0.005
"""The schedule runs this share below the rate, a margin for the gateway's jitter."""

CATCH_UP_SECONDS = 0.005
"""How far behind ``now`` the schedule may be and still be caught up on: above a
reactor timer's usual lateness (1-2 ms), and at most ``HEADROOM`` seconds, so that
no second holds more than ``rate + 1``."""

HELD_SECONDS = 0.001
"""When the 100 ms limit holds due submits back, this much of them is kept for the
next pump; the rest are dropped from the schedule, so a catch-up is never repeated
100 ms later as a burst."""

WINDOW_SECONDS = 0.1
"""The span of the gateway's short rule: at most ``rate / 10 + 1`` in any 100 ms."""

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

_EARLY = 1e-9
"""A timer set for the exact due time may read the clock a rounding error early."""


def window_limit(rate: float) -> int:
    """How many submits ``rate`` allows in any ``WINDOW_SECONDS``: ``rate / 10 + 1``
    rounded down, at least one."""
    # Rounded first: 5000 * 0.1 is 500.00000000000006 in floating point.
    return max(1, math.floor(round(rate * WINDOW_SECONDS + 1, 6)))


class TokenBucket:
    """Paces submits at ``rate`` per second on ``clock``, shared by all connections.

    ``rate`` is the channel's (0, None or nonsense mean ``DEFAULT_RATE``).  Callers
    ``take(wanted)`` before sending, ``settle(unused)`` once the granted submits are
    written (or only ``refund`` what they took and did not send), and ask
    ``delay()`` when to try again after ``take`` gave nothing.
    """

    def __init__(self, rate: float, clock: IReactorTime) -> None:
        self.configured_rate = channel_rate(rate)
        self._clock = clock
        now = clock.seconds()
        # The due time of the channel's next submit: a new limiter is an idle one.
        self._due = now - CATCH_UP_SECONDS
        self._last_flow_control = float("-inf")
        self.flow_control_episodes = 0
        # The grants of the last WINDOW_SECONDS, oldest first: [clock seconds,
        # count], one entry per take; the last one until it is settled.
        self._sent: deque[list] = deque()
        self._in_window = 0
        self._unsettled: list | None = None
        self._set_rate(self.configured_rate, now)

    def _set_rate(self, rate: float, now: float) -> None:
        """Change the rate in use, with its spacing and its 100 ms limit."""
        self.rate = rate
        self._pace = rate * (1 - HEADROOM)
        self._interval = 1.0 / self._pace
        self._limit = window_limit(rate)
        self._last_change = now

    def _room(self, now: float) -> int:
        """How many more grants the log's last ``WINDOW_SECONDS`` allow at ``now``."""
        sent = self._sent
        horizon = now - WINDOW_SECONDS + _EARLY
        while sent and sent[0][0] <= horizon:
            self._in_window -= sent.popleft()[1]
        return self._limit - self._in_window

    def take(self, wanted: int) -> int:
        """Take up to ``wanted`` submits that are due now; return how many."""
        now = self._clock.seconds()
        self._unsettled = None
        if self.rate < self.configured_rate and (
            now - self._last_change >= RECOVERY_SECONDS
        ):
            self._set_rate(min(self.configured_rate, self.rate * RECOVERY_FACTOR), now)

        due = self._due
        if due < now - CATCH_UP_SECONDS:
            # Idle or stalled: no credit beyond the catch-up allowance.
            due = now - CATCH_UP_SECONDS
        elif due > now + _EARLY:
            return 0

        granted = min(wanted, int((now - due) * self._pace + _EARLY) + 1)
        room = self._room(now)
        if granted > room:
            # The 100 ms limit holds the rest back: all but HELD_SECONDS of them
            # are dropped.  (Saved up, they would all go when the oldest sends
            # age out: the same burst again every 100 ms.)
            granted = max(0, room)
            due = max(due, now - HELD_SECONDS - granted * self._interval)
        if granted <= 0:
            self._due = due
            return 0

        self._due = due + granted * self._interval
        self._in_window += granted
        entry = [now, granted]
        self._sent.append(entry)
        self._unsettled = entry
        return granted

    def settle(self, unused: int = 0) -> None:
        """The last ``take``'s submits are written now, all but ``unused`` of them.

        Gives the unused back and logs the rest at the clock's time now, so the
        100 ms rule holds on the moments they were handed over, not on the
        earlier moment they were granted.  Call it before the next ``take``.
        """
        entry = self._last_grant()
        self._unsettled = None
        if entry is None:
            return

        self._give_back(entry, unused)
        if entry[1] > 0:
            # The newest entry of the log: a later time keeps the log in order.
            entry[0] = max(entry[0], self._clock.seconds())

    def refund(self, count: int) -> None:
        """Give back ``count`` of the submits the last ``take`` granted, unsent."""
        entry = self._last_grant()
        if entry is not None:
            self._give_back(entry, count)

    def _last_grant(self) -> list | None:
        """The log entry of the last ``take``, unless settled or aged out."""
        entry = self._unsettled
        if entry is None or not self._sent or self._sent[-1] is not entry:
            return None
        return entry

    def _give_back(self, entry: list, count: int) -> None:
        """Return ``count`` (at most all) of the grants of ``entry`` to the schedule."""
        returned = min(max(count, 0), entry[1])
        if returned == 0:
            return

        entry[1] -= returned
        self._in_window -= returned
        self._due -= returned * self._interval
        if entry[1] == 0:
            self._sent.pop()
            self._unsettled = None

    def delay(self) -> float:
        """Seconds until ``take`` can grant again (0 when it can now)."""
        now = self._clock.seconds()
        wait = max(0.0, self._due - now)
        if self._room(now) <= 0:
            # The oldest send must leave the window first.
            wait = max(wait, self._sent[0][0] + WINDOW_SECONDS - now)
        return wait

    def slow_down(self) -> bool:
        """React to a flow-control answer; True when this began a new episode."""
        now = self._clock.seconds()
        new_episode = now - self._last_flow_control >= EPISODE_SECONDS
        if new_episode:
            self._last_flow_control = now
            self.flow_control_episodes += 1
            self._set_rate(max(MINIMUM_RATE, self.rate / 2), now)
        else:
            self._last_change = now

        # Pause: nothing is due until the pause is over.
        self._due = max(self._due, now + PAUSE_SECONDS)
        return new_episode
