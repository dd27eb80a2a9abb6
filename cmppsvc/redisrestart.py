# -*- test-case-name: tests.test_redisrestart -*-
"""When to start again a private redis-server that exited on its own.

``RestartSchedule`` is the policy ``cmppsvc.localredis.LocalRedis`` follows
after a crash: wait, start, and on failure wait longer, bounded, until stopped.
It only counts and times; starting the server is the caller's ``start``.
"""

from collections.abc import Callable
from typing import Any

from twisted.application.internet import backoffPolicy
from twisted.internet import defer
from twisted.logger import Logger

#: Delay before the n-th restart (n from 0) of a server that exited on its
#: own: 0.5 s doubling to 30 s. No jitter: one process restarts one server.
RESTART_DELAY = backoffPolicy(
    initialDelay=0.5, maxDelay=30.0, factor=2.0, jitter=lambda: 0.0
)

#: A server that ran this long (seconds) before it exited is restarted after
#: the first delay again; one that keeps dying sooner waits longer each time.
STABLE_UPTIME = 30.0


class RestartSchedule:
    """Starts a server again after it exited on its own, later each time.

    ``start`` spawns the server and fires once it answers, or fails. The n-th
    attempt in a row waits ``delay(n)``; a failed start schedules the next
    one, and the count goes back to 0 once a server ran ``stable_uptime``
    seconds before exiting. Nothing more happens after ``stop()``.
    """

    log = Logger()

    def __init__(
        self,
        start: Callable[[], defer.Deferred],
        clock: Any,
        port: int,
        delay: Callable[[int], float] = RESTART_DELAY,
        stable_uptime: float = STABLE_UPTIME,
    ):
        self._start = start
        self._clock = clock
        self._port = port
        self._delay = delay
        self._stable_uptime = stable_uptime
        self._attempt = 0
        self._up_since: float | None = None
        self._pending: Any = None
        self._stopped = False

    @property
    def pending(self) -> bool:
        """True while a restart is waiting for its delay."""
        return self._pending is not None

    def running(self) -> None:
        """The server answers: its uptime counts from now."""
        self._up_since = self._clock.seconds()

    def exited(self) -> None:
        """The server exited on its own: start it again after the delay."""
        if self._stopped or self._pending is not None:
            return
        up_since, self._up_since = self._up_since, None
        if up_since is not None:
            if self._clock.seconds() - up_since >= self._stable_uptime:
                self._attempt = 0
        self._schedule()

    def stop(self) -> None:
        """No more restarts; a restart waiting for its delay is dropped."""
        self._stopped = True
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None

    def _schedule(self) -> None:
        delay = self._delay(self._attempt)
        self._attempt += 1
        self.log.info(
            "restarting redis-server port={port} in {delay} s attempt={attempt}",
            port=self._port,
            delay=delay,
            attempt=self._attempt,
        )
        self._pending = self._clock.callLater(delay, self._restart)

    def _restart(self) -> None:
        self._pending = None
        starting = defer.maybeDeferred(self._start)
        starting.addCallbacks(self._restarted, self._failed)

    def _restarted(self, _result) -> None:
        if self._stopped:
            return
        self.running()
        self.log.info("redis-server restarted port={port}", port=self._port)

    def _failed(self, failure) -> None:
        if self._stopped:
            return
        self.log.warn(
            "redis-server restart failed port={port}: {reason}",
            port=self._port,
            reason=failure.getErrorMessage(),
        )
        self._schedule()
