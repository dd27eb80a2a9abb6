# -*- test-case-name: tests.test_lease,tests.test_collection_takeover -*-
"""Channel ownership leases: each channel runs in exactly one process at a time.

A lease is the key ``cmppsvc:lease:<id>`` holding the owner's name, with an
expiry. Rules:

- Take: ``SET key owner NX PX ttl``; only a free lease can be taken.
- Renew: every ``ttl / 3`` ONE Lua script run renews every lease the process
  holds (up to ``RENEW_BATCH`` per run): it extends each key's expiry only if
  the key still names this owner (compare-and-PEXPIRE). A failed renewal is
  retried sooner (``retry_interval``); it is logged once per outage.
- Release: a Lua compare-and-DEL, after the channel has stopped.
- Loss: the owner measures on its own clock from the moment it SENT the last
  successful take or renewal; at ``ttl - margin`` after it without a newer
  success (Redis away, a long pause, a network split) the lease counts as lost
  and ``lost(channel_id)`` is called, so the channel stops while the key still
  exists in Redis and nobody else can have taken it yet. A renewal answered 0
  (the key names someone else or is gone) is a loss at once.

The margin must cover the channel's stop (its ``stop_timeout``); the owner
also aborts whatever connection is left when the margin runs out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from cmppsvc import keys

log = Logger(namespace="cmppsvc.lease")

#: Default lease time (seconds) and the part of it kept to stop a channel.
DEFAULT_TTL = 15.0
DEFAULT_MARGIN_FRACTION = 1 / 3

#: Owner names and channel ids are short; anything longer is refused.
MAX_OWNER_LENGTH = 200

#: Most leases renewed by one script run (a thousand channels: one run).
RENEW_BATCH = 1000

# KEYS: the leases; ARGV: owner, ttl in ms. Returns 1 (renewed) or 0 (the key
# names someone else or is gone) per key, in order.
RENEW_SCRIPT = """\
local renewed = {}
for index, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    renewed[index] = redis.call('PEXPIRE', key, ARGV[2])
  else
    renewed[index] = 0
  end
end
return renewed
"""
RELEASE_SCRIPT = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('DEL', KEYS[1]) else return 0 end"
)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


class LeaseKeeper:
    """Takes, renews and releases the leases of the channels this process runs.

    `lost(channel_id, reason)` is called once when a held lease can no longer
    be trusted; the lease is then forgotten here (take it again to run the
    channel again).
    """

    def __init__(
        self,
        redis: Any,
        owner: str,
        clock: IReactorTime,
        lost: Callable[[str, str], None],
        ttl: float = DEFAULT_TTL,
        margin: float | None = None,
    ) -> None:
        if not 0 < len(owner) <= MAX_OWNER_LENGTH:
            raise ValueError(f"a lease owner name has 1 to {MAX_OWNER_LENGTH} chars")
        if ttl <= 0:
            raise ValueError("the lease time must be positive")
        self.redis = redis
        self.owner = owner
        self.clock = clock
        self.ttl = ttl
        self.margin = ttl * DEFAULT_MARGIN_FRACTION if margin is None else margin
        if not 0 < self.margin < ttl:
            raise ValueError("the lease margin must be between 0 and the lease time")
        self.renew_interval = ttl / 3
        self.retry_interval = min(self.renew_interval, max(ttl / 15, 0.05))
        self._lost = lost
        # channel id -> the watchdog call that declares the lease lost
        self._held: dict[str, Any] = {}
        self._renew_call: Any = None
        self._running = False
        self._renewals_failing = False

    @property
    def ttl_ms(self) -> int:
        """The lease time in milliseconds, as PX takes it."""
        return max(1, int(self.ttl * 1000))

    def holds(self, channel_id: str) -> bool:
        """True while this process holds the channel's lease."""
        return channel_id in self._held

    def held(self) -> list[str]:
        """The channels whose leases this process holds."""
        return sorted(self._held)

    def start(self) -> None:
        """Start renewing the held leases."""
        self._running = True
        self._schedule(self.renew_interval)

    def stop(self) -> None:
        """Stop renewing, without releasing anything (the watchdogs stay: a
        held lease still ends in `lost` when it runs out)."""
        self._running = False
        if self._renew_call is not None and self._renew_call.active():
            self._renew_call.cancel()
        self._renew_call = None

    def halt(self) -> None:
        """Forget every lease at once: no renewal, no release, no `lost`
        call. What a process that dies does; for tests and emergencies."""
        self.stop()
        for watchdog in self._held.values():
            if watchdog.active():
                watchdog.cancel()
        self._held.clear()

    @defer.inlineCallbacks
    def acquire(self, channel_id: str):
        """Take the channel's lease if it is free; fires with True when taken
        (or already held here)."""
        if channel_id in self._held:
            return True

        sent_at = self.clock.seconds()
        reply = yield self.redis.execute_command(
            "SET", keys.lease(channel_id), self.owner, "NX", "PX", self.ttl_ms
        )
        if _text(reply) != "OK":
            return False
        if channel_id in self._held:
            return True

        self._held[channel_id] = self.clock.callLater(
            self._valid_for(sent_at), self._expired, channel_id
        )
        log.info(
            "lease taken channel={channel} owner={owner}",
            channel=channel_id,
            owner=self.owner,
        )
        return True

    @defer.inlineCallbacks
    def release(self, channel_id: str):
        """Give the lease back (only if Redis still names this owner)."""
        watchdog = self._held.pop(channel_id, None)
        if watchdog is not None and watchdog.active():
            watchdog.cancel()
        yield self.redis.execute_command(
            "EVAL", RELEASE_SCRIPT, 1, keys.lease(channel_id), self.owner
        )
        log.info("lease released channel={channel}", channel=channel_id)

    @defer.inlineCallbacks
    def owner_of(self, channel_id: str):
        """Fires with the name of the process holding the lease, or None."""
        reply = yield self.redis.execute_command("GET", keys.lease(channel_id))
        return _text(reply)

    def _valid_for(self, sent_at: float) -> float:
        """Seconds from now until a lease confirmed by a command sent at
        `sent_at` must be considered lost."""
        return max(0.0, sent_at + self.ttl - self.margin - self.clock.seconds())

    def _schedule(self, delay: float) -> None:
        if self._running:
            self._renew_call = self.clock.callLater(delay, self._renew_all)

    @defer.inlineCallbacks
    def _renew_all(self):
        self._renew_call = None
        channel_ids = list(self._held)
        batches = [
            channel_ids[start : start + RENEW_BATCH]
            for start in range(0, len(channel_ids), RENEW_BATCH)
        ]
        try:
            results = yield defer.DeferredList(
                [self._renew(batch) for batch in batches], consumeErrors=True
            )
            failed = [
                channel_id
                for batch, (success, renewed) in zip(batches, results)
                if not success or not renewed
                for channel_id in batch
            ]
            if failed and not self._renewals_failing:
                log.warn(
                    "lease renewal failed, retrying every {interval} s "
                    "channels={channels}",
                    interval=self.retry_interval,
                    channels=",".join(failed[:20]),
                )
            elif not failed and self._renewals_failing:
                log.info("lease renewals answered again")
            self._renewals_failing = bool(failed)
        finally:
            self._schedule(
                self.retry_interval if self._renewals_failing else self.renew_interval
            )

    @defer.inlineCallbacks
    def _renew(self, channel_ids: list[str]):
        """Renew several leases in one script run; fires with True (answered:
        the leases it found taken are declared lost) or False (no answer)."""
        sent_at = self.clock.seconds()
        try:
            replies = yield self.redis.execute_command(
                "EVAL",
                RENEW_SCRIPT,
                len(channel_ids),
                *[keys.lease(channel_id) for channel_id in channel_ids],
                self.owner,
                self.ttl_ms,
            )
        except Exception as error:  # Redis away: the watchdogs decide
            log.debug("lease renewal error: {error}", error=str(error)[:200])
            return False

        valid_for = self._valid_for(sent_at)
        for channel_id, reply in zip(channel_ids, replies or ()):
            watchdog = self._held.get(channel_id)
            if watchdog is None:
                continue
            if int(reply or 0) != 1:
                self._declare_lost(channel_id, "the lease is held by another process")
            elif watchdog.active():
                watchdog.reset(valid_for)
        return True

    def _expired(self, channel_id: str) -> None:
        self._declare_lost(
            channel_id, f"lease not renewed within {self.ttl - self.margin:g} s"
        )

    def _declare_lost(self, channel_id: str, reason: str) -> None:
        watchdog = self._held.pop(channel_id, None)
        if watchdog is None:
            return
        if watchdog.active():
            watchdog.cancel()
        log.error(
            "lease lost channel={channel} owner={owner}: {reason}",
            channel=channel_id,
            owner=self.owner,
            reason=reason,
        )
        try:
            self._lost(channel_id, reason)
        except Exception:
            log.failure("stopping channel={channel} failed", channel=channel_id)
