# -*- test-case-name: tests.test_redis_outage -*-
"""Riding out a Redis outage: telling passing failures from real ones.

Losing Redis for a moment (a restart, a failover) fails the commands that were
on the wire; `is_transient` tells such failures from real ones, `OutageLog`
writes one line per outage rather than one per failed command, and
`RetryingReads` sends read-only commands again until Redis answers (bounded).
Commands that change data are not retried here: whether they ran is unknown.
"""

from __future__ import annotations

from typing import Any

import txredisapi
from twisted.internet import defer, error, task
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

log = Logger(namespace="cmppsvc.redisoutage")


#: Error replies of a server that is there but cannot answer yet: loading its
#: data after a restart, running a long script, or without a master.
TRANSIENT_REPLIES = ("LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN")

#: Read-only commands: sending one again after a lost connection is harmless.
READ_ONLY_COMMANDS = frozenset(
    {
        "EXISTS",
        "GET",
        "HGET",
        "HGETALL",
        "HLEN",
        "HMGET",
        "MGET",
        "PING",
        "PTTL",
        "SCAN",
        "SCARD",
        "SISMEMBER",
        "SMEMBERS",
        "TTL",
        "XINFO",
        "XLEN",
        "XPENDING",
        "XRANGE",
    }
)

#: How long `RetryingReads` keeps sending a read again (seconds), and its
#: delays between two sends: first, ceiling.
READ_PATIENCE = 30.0
READ_RETRY_INITIAL = 0.05
READ_RETRY_MAX = 1.0


def is_transient(problem: BaseException | Failure) -> bool:
    """True for a Redis failure that passes by itself: the connection lost or
    not made, no reply in time, or a server loading its data or failing over."""
    if isinstance(problem, Failure):
        problem = problem.value
    if isinstance(problem, txredisapi.ResponseError):
        return str(problem).startswith(TRANSIENT_REPLIES)
    return isinstance(
        problem,
        (
            txredisapi.ConnectionError,
            defer.TimeoutError,
            error.ConnectError,
            error.ConnectionLost,
            error.ConnectionDone,
        ),
    )


def failure_text(problem: BaseException | Failure) -> str:
    """One line naming what went wrong with a Redis command, for a log field."""
    if isinstance(problem, Failure):
        problem = problem.value
    if isinstance(problem, (defer.TimeoutError, error.TimeoutError)):
        # Deferred.addTimeout's error reads "(30.0, 'Deferred')".
        seconds = problem.args[0] if problem.args else None
        if isinstance(seconds, (int, float)):
            return f"no reply from Redis within {seconds:g} s"
        return "no reply from Redis in time"
    return str(problem) or type(problem).__name__


class OutageLog:
    """Logs a Redis outage once: an error at the first failure, an info line
    when Redis answers again; the failures in between are not logged."""

    def __init__(self, logger: Logger, resumed: str = "resuming") -> None:
        self.logger = logger
        self.resumed = resumed
        self.failing = False

    def failed(self, doing: str, problem: BaseException) -> None:
        """A Redis command failed while `doing` (e.g. "reading the records")."""
        if not self.failing:
            self.logger.error(
                "Redis trouble while {doing}, retrying later: {error}",
                doing=doing,
                error=str(problem)[:200] or type(problem).__name__,
            )
        self.failing = True

    def recovered(self) -> None:
        """A Redis command succeeded: the outage, if any, is over."""
        if self.failing:
            self.logger.info("Redis answers again; {resumed}", resumed=self.resumed)
        self.failing = False


class RetryingReads:
    """A Redis connection whose read-only commands (`READ_ONLY_COMMANDS`) are
    sent again, with backoff, while they fail for a transient reason, for up
    to `patience` seconds; then the last error is raised. Every other command
    and attribute is the wrapped connection's, unchanged.

    Callers then see a Redis restart as a slow reply. A retrying Redis logs
    one warning per outage. `disconnect()` ends the waiting retries (they fail
    with their last error) and closes the wrapped connection.
    """

    def __init__(
        self,
        redis: Any,
        clock: IReactorTime,
        patience: float = READ_PATIENCE,
        initial_delay: float = READ_RETRY_INITIAL,
        max_delay: float = READ_RETRY_MAX,
    ) -> None:
        self.redis = redis
        self.clock = clock
        self.patience = patience
        self.initial_delay = initial_delay
        self.max_delay = max_delay
        self._sleeping: set[defer.Deferred] = set()
        self._failing = False
        self._closed = False

    def execute_command(self, *arguments: Any, **options: Any) -> defer.Deferred:
        """Send a command; read-only ones are retried (see the class)."""
        name = str(arguments[0]).upper() if arguments else ""
        if name not in READ_ONLY_COMMANDS:
            return self.redis.execute_command(*arguments, **options)
        return self._retried(self.redis.execute_command, arguments, options)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.redis, name)
        if name.upper() not in READ_ONLY_COMMANDS:
            return attribute

        def retried(*arguments: Any, **options: Any) -> defer.Deferred:
            return self._retried(attribute, arguments, options)

        return retried

    def disconnect(self) -> defer.Deferred:
        """Stop retrying, then close the wrapped connection."""
        self._closed = True
        for sleeping in list(self._sleeping):
            sleeping.cancel()
        return self.redis.disconnect()

    @defer.inlineCallbacks
    def _retried(self, send, arguments: tuple, options: dict):
        deadline = self.clock.seconds() + self.patience
        delay = self.initial_delay
        while True:
            try:
                result = yield defer.maybeDeferred(send, *arguments, **options)
            except Exception as problem:
                if (
                    self._closed
                    or not is_transient(problem)
                    or self.clock.seconds() + delay > deadline
                ):
                    raise
                self._retrying(problem)
                sleeping = task.deferLater(self.clock, delay, lambda: None)
                self._sleeping.add(sleeping)
                try:
                    yield sleeping
                except defer.CancelledError:
                    raise problem from None
                finally:
                    self._sleeping.discard(sleeping)
                delay = min(delay * 2, self.max_delay)
                continue

            if self._failing:
                log.info("Redis answers reads again")
                self._failing = False
            return result

    def _retrying(self, problem: BaseException) -> None:
        if not self._failing:
            log.warn(
                "Redis reads failing, retrying for up to {patience} s: {error}",
                patience=self.patience,
                error=str(problem)[:200] or type(problem).__name__,
            )
        self._failing = True
