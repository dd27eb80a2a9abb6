# -*- test-case-name: tests.test_connector_settings,tests.test_connector -*-
"""How long to wait before reconnecting, by the kind of the last failure.

A gateway that refuses our login (wrong account, wrong secret, unsupported version)
will refuse the next one too, and many operators lock an account that keeps failing;
so a refusal waits far longer than a dropped or refused TCP connection.  Delays grow
exponentially with the failures in a row, are capped, and carry random jitter so that
several connections or processes never retry in step.  The curves are Twisted's own
``backoffPolicy``; this module only picks the curve and counts the failures.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping

from twisted.application.internet import backoffPolicy

NETWORK = "network"
"""TCP refused or lost, login unanswered, heartbeat unanswered: retry soon."""

REFUSED = "refused"
"""The gateway refused the login for another reason (Status 5 and above, vendor codes
such as too many connections or a disabled account): retry after a while."""

AUTHENTICATION = "authentication"
"""Structure error, unknown account, bad secret or version too high (Status 1 to 4):
the configuration is wrong, retrying soon only risks an account lock."""


def login_failure_kind(status: int) -> str:
    """The kind of a CONNECT_RESP Status other than 0 (reference section 6.1)."""
    if 1 <= status <= 4:
        return AUTHENTICATION
    return REFUSED


#: kind -> (first delay, cap, growth factor, jitter seconds)
CURVES: dict[str, tuple[float, float, float, float]] = {
    NETWORK: (1.0, 60.0, 2.0, 1.0),
    REFUSED: (30.0, 600.0, 2.0, 10.0),
    AUTHENTICATION: (300.0, 3600.0, 2.0, 60.0),
}
"""The delay curve of each kind; the Nth failure in a row waits
min(first * factor ** (N - 1), cap) plus up to ``jitter`` seconds of noise."""

STABLE_AFTER = 30.0
"""A connection must stay logged in this long before its failure count starts again
from zero, so a gateway that accepts the login and drops us at once still sees the
delays grow instead of a reconnect every second."""


class ReconnectBackoff:
    """Counts one connection's failures in a row and gives the next delay.

    ``curves`` replaces ``CURVES`` (tests and benchmarks use short delays).
    Hand ``delay`` to ``ClientService`` as its ``retryPolicy``.  ``ClientService``
    counts its own failures only until a TCP connection is made, and a login refusal
    comes after that, so this object keeps the count itself: ``failed(kind)`` is told
    the kind of each failure before the service asks for the delay, and ``stable()``
    resets the count once a login has held.
    """

    def __init__(
        self,
        random_source: Callable[[], float] = random.random,
        curves: Mapping[str, tuple[float, float, float, float]] | None = None,
    ) -> None:
        self._policies = {
            kind: backoffPolicy(
                initialDelay=first,
                maxDelay=cap,
                factor=factor,
                jitter=lambda spread=spread: spread * random_source(),
            )
            for kind, (first, cap, factor, spread) in (curves or CURVES).items()
        }
        self.failures = 0
        self.kind = NETWORK
        self._pending_kind: str | None = None

    def failed(self, kind: str) -> None:
        """Record the kind of the failure the next ``delay`` call is about."""
        self._pending_kind = kind

    def stable(self) -> None:
        """A login has held: the next failure starts the curve from the beginning."""
        self.failures = 0

    def delay(self, attempt: int = 0) -> float:
        """Seconds to wait before the next connection attempt (``attempt`` ignored).

        A failure whose kind was not recorded (TCP refused, DNS, timeout of the TCP
        connect) is a network failure.
        """
        self.kind = self._pending_kind or NETWORK
        self._pending_kind = None
        self.failures += 1

        # backoffPolicy's attempt 0 gives the first delay itself.
        return self._policies[self.kind](self.failures - 1)
