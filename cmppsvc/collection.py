# -*- test-case-name: tests.test_collection,tests.test_reload -*-
"""All channels of one process: a live reflection of the `channel-info:<id>` records.

Rules (the operator's view):

- Records are found with SCAN (never KEYS). A good record runs, unless its id
  is in ``cmppsvc:stopped`` (an operator stopped it). A broken record is
  reported with the field and the reason, in the log and in that channel's
  status hash, and skipped: the other channels run, and messages queued for it
  stay queued. A record that turns broken stops its channel.
- `reconcile(id)` brings one channel in line with its record: a changed record
  restarts only its channel (graceful: intake stops, answers are awaited,
  parts not sent stay pending in the MT stream and are read again at the
  start), a deleted record stops it, a new record starts it.
  Only a change of the parsed configuration restarts; a change of fields
  cmppsvc ignores does not. cmppsvc.reload says when to reconcile.
- Several processes: a channel runs only in the process holding its lease;
  taking over a dead process's channels is cmppsvc.takeover's part.
- Redis away: a check that fails is logged once per outage and left to the
  next rescan; nothing stops because Redis is gone for a while (only a lease
  that cannot be renewed stops its channel).
- Process stop (`stopService`): every channel stops gracefully and gives its
  lease back. Each wait on Redis is bounded by `stop_timeout`: for a check of
  the channel still under way, for the channel's last writes, for the lease
  release. A channel whose writes could not all be written keeps its lease,
  left to lapse, so no other process takes the channel over before they are.
- Manual stop (`stop_channel`): the id goes into ``cmppsvc:stopped`` first,
  then the owner stops the channel gracefully and, once its in-flight entries
  are resolved, deletes its cached Sequence_Id and in-flight keys; the Msg_Id
  index is kept so late reports still match. `start_channel` removes the id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from cmppsvc import keys
from cmppsvc.channel import FLUSH_TIMEOUT, ChannelService, SharedStores
from cmppsvc.commands import Command, check_channel_id
from cmppsvc.config import ChannelConfig, ChannelConfigError, parse_channel_record
from cmppsvc.lease import DEFAULT_TTL, LeaseKeeper
from cmppsvc.records import (
    SCAN_BATCH,
    refusal_status,
    report_refused,
    same_config,
    scan_channel_ids,
)
from cmppsvc.redisoutage import OutageLog, failure_text, is_transient
from cmppsvc.status import read as read_status
from cmppsvc.takeover import CLAIM_PERIOD_LEASES, LeaseCoordination

__all__ = [
    "CLAIM_PERIOD_LEASES",
    "MANUAL_STOP",
    "SCAN_BATCH",
    "ChannelCollection",
    "same_config",
    "scan_channel_ids",
]

log = Logger(namespace="cmppsvc.collection")

MANUAL_STOP = "stopped by an operator"


class ChannelCollection(LeaseCoordination, Service):
    """The channels this process runs, kept in line with their records."""

    def __init__(
        self,
        stores: SharedStores,
        clock: IReactorTime,
        endpoint_factory: Callable[..., Any] | None = None,
        config_filter: Callable[[ChannelConfig], ChannelConfig] | None = None,
        owner: str = "cmppsvc",
        lease_ttl: float = DEFAULT_TTL,
        lease_margin: float | None = None,
        stop_timeout: float = FLUSH_TIMEOUT,
    ) -> None:
        self._stores = stores
        self._clock = clock
        self._endpoint_factory = endpoint_factory
        self._config_filter = config_filter
        self.owner = owner
        #: Bound (seconds) of each wait on Redis while stopping.
        self.stop_timeout = stop_timeout
        self.leases = LeaseKeeper(
            stores.redis, owner, clock, self._lease_lost, lease_ttl, lease_margin
        )
        #: channel id -> why its record was refused
        self.broken: dict[str, str] = {}
        self._refusals: dict[str, ChannelConfigError] = {}
        #: ids an operator stopped, as last seen
        self.stopped: set[str] = set()
        self._channels: dict[str, ChannelService] = {}
        self._stopping: dict[ChannelService, defer.Deferred] = {}
        self._candidates: set[str] = set()
        self._taken_at: dict[str, float] = {}
        self._locks: dict[str, defer.DeferredLock] = {}
        self._takeover: task.LoopingCall | None = None
        self._trouble = OutageLog(log, "channels are being checked")
        self._first_check: defer.Deferred = defer.succeed(None)
        # What the last "channels checked" line said: a rescan that finds the
        # same is not logged again.
        self._last_counts: tuple[int, ...] | None = None

    # -- the Python control API ------------------------------------------------

    def __iter__(self) -> Iterator[ChannelService]:
        return iter(list(self._channels.values()))

    def __len__(self) -> int:
        return len(self._channels)

    def channel(self, channel_id: str) -> ChannelService | None:
        """The channel's service when it runs in this process."""
        return self._channels.get(channel_id)

    @defer.inlineCallbacks
    def start_channel(self, channel_id: str):
        """Operator start: forget a manual stop, tell every process, and run
        the channel here if its lease is free."""
        check_channel_id(channel_id)
        yield self._stores.redis.execute_command("SREM", keys.STOPPED, channel_id)
        yield self._publish(Command("start", channel_id))
        yield self.reconcile(channel_id)

    @defer.inlineCallbacks
    def stop_channel(self, channel_id: str):
        """Operator stop: remembered across restarts; the owner stops it."""
        check_channel_id(channel_id)
        yield self._stores.redis.execute_command("SADD", keys.STOPPED, channel_id)
        yield self._publish(Command("stop", channel_id))
        yield self.reconcile(channel_id)

    def reload_channel(self, channel_id: str | None = None) -> defer.Deferred:
        """Read one record (None: every record) again and act on changes."""
        if channel_id is None:
            return self.rescan()
        return self.reconcile(check_channel_id(channel_id))

    def handle_command(self, command: Command) -> defer.Deferred:
        """Act on a command from ``cmppsvc:control`` (already recorded in
        ``cmppsvc:stopped`` by its sender): re-check the channel."""
        if command.channel is None:
            return self.rescan()
        checked = self.reconcile(command.channel)
        checked.addCallback(lambda _: self._warn_if_no_record(command))
        return checked

    @defer.inlineCallbacks
    def _warn_if_no_record(self, command: Command):
        # A mistyped id would otherwise be ignored without a word.
        if command.channel in self._channels or command.channel in self.broken:
            return
        try:
            exists = yield self._stores.redis.execute_command(
                "EXISTS", keys.channel_info(command.channel)
            )
        except Exception:
            return
        if not exists:
            log.warn(
                "control command for a channel without a record "
                "action={action} channel={channel}",
                action=command.action,
                channel=command.channel,
            )

    def status(self) -> list[dict[str, Any]]:
        """This process's view: its channels, broken and stopped records."""
        found = []
        for channel in self:
            status = channel.status()
            status["owner"] = self.owner
            found.append(status)
        found += [
            {"channel": channel_id, "state": "broken", "last_error": reason}
            for channel_id, reason in sorted(self.broken.items())
        ]
        found += [
            {"channel": channel_id, "state": "stopped", "stop_reason": MANUAL_STOP}
            for channel_id in sorted(self.stopped)
        ]
        return found

    @defer.inlineCallbacks
    def read_statuses(self):
        """Every channel's status hash (all processes), with its lease owner."""
        statuses = []
        for channel_id in (yield scan_channel_ids(self._stores.redis)):
            status = yield read_status(self._stores.redis, channel_id)
            status["channel"] = channel_id
            status["owner"] = (yield self.leases.owner_of(channel_id)) or ""
            statuses.append(status)
        return statuses

    # -- life cycle ------------------------------------------------------------

    def startService(self) -> defer.Deferred:
        """Look at every record, then keep renewing and taking over leases."""
        super().startService()
        self.leases.start()
        self._takeover = task.LoopingCall(self._take_over)
        self._takeover.clock = self._clock
        self._takeover.start(self.leases.renew_interval, now=False)
        self._first_check = self.rescan()
        return self.whenChecked()

    def whenChecked(self) -> defer.Deferred:
        """Fires once every record has been looked at after the start."""
        result: defer.Deferred = defer.Deferred()
        self._first_check.addBoth(lambda value: (result.callback(None), value)[1])
        return result

    @defer.inlineCallbacks
    def stopService(self):
        """Stop every channel gracefully, then give its lease back; ends
        within a bounded time whatever Redis does (see the module)."""
        super().stopService()
        if self._takeover is not None and self._takeover.running:
            self._takeover.stop()
        yield defer.DeferredList(
            [
                self._stop_for_exit(channel_id)
                for channel_id in sorted(set(self._channels) | set(self._locks))
            ],
            consumeErrors=True,
        )
        yield defer.DeferredList(list(self._stopping.values()), consumeErrors=True)
        left = self.leases.held()
        if left:
            log.warn(
                "stopping: {count} channel leases not given back, left to lapse "
                "within the lease time channels={channels}",
                count=len(left),
                channels=",".join(left),
            )
        self.leases.halt()

    def longest_stop(self) -> float:
        """Seconds `stopService` takes at most now: its three bounded waits
        on Redis (a check under way, the last writes, the lease release)
        and the slowest channel's graceful CMPP stop (answers, TERMINATE)."""
        channels = [*self._channels.values(), *self._stopping]
        cmpp = max((2 * channel.config.stop_timeout for channel in channels), default=0)
        return 3 * self.stop_timeout + cmpp

    def stopping_count(self) -> int:
        """Channels running or still stopping."""
        return len(self._channels) + len(self._stopping)

    @defer.inlineCallbacks
    def _stop_for_exit(self, channel_id: str):
        """Stop a channel once the work under way for it is done (a check, a
        restart), waiting for that at most `stop_timeout`."""
        lock = self._locks.setdefault(channel_id, defer.DeferredLock())
        taking = lock.acquire()
        taking.addTimeout(self.stop_timeout, self._clock)
        try:
            yield taking
        except defer.TimeoutError:
            log.warn(
                "stopping: gave up waiting for the check of channel={channel} "
                "after {seconds} s (Redis unreachable?); stopping it anyway",
                channel=channel_id,
                seconds=self.stop_timeout,
            )
            yield self._stop(channel_id, "process stopping")
            return
        try:
            yield self._stop(channel_id, "process stopping")
        finally:
            lock.release()
            if not lock.locked and self._locks.get(channel_id) is lock:
                del self._locks[channel_id]

    def load(self) -> defer.Deferred:
        """Look at every record once (kept for callers of the first version)."""
        return self.rescan()

    # -- keeping in line with the records --------------------------------------

    @defer.inlineCallbacks
    def rescan(self):
        """Reconcile every record, running channel and refused record."""
        try:
            found = yield scan_channel_ids(self._stores.redis)
        except Exception as error:
            self._report_trouble("rescanning the channel records", error)
            return
        channel_ids = set(found) | set(self._channels) | set(self.broken)
        yield defer.DeferredList(
            [self.reconcile(channel_id) for channel_id in sorted(channel_ids)],
            consumeErrors=True,
        )
        counts = (len(found), len(self._channels), len(self.broken), len(self.stopped))
        if counts == self._last_counts:
            return
        self._last_counts = counts
        records, running, broken, stopped = counts
        log.info(
            "channels checked records={records} running={running} "
            "broken={broken} stopped={stopped}",
            records=records,
            running=running,
            broken=broken,
            stopped=stopped,
        )

    def reconcile(self, channel_id: str) -> defer.Deferred:
        """Bring one channel in line with its record (one at a time per id);
        a Redis failure is logged and left to the next rescan."""
        d = self._locked(channel_id, self._reconcile, channel_id)
        d.addErrback(self._reconcile_failed, channel_id)
        return d

    def _reconcile_failed(self, failure: Any, channel_id: str) -> None:
        if is_transient(failure):
            self._report_trouble(f"checking channel {channel_id}", failure.value)
        elif failure.check(defer.CancelledError):
            pass  # the process is stopping
        else:
            log.failure(
                "checking channel {channel} failed", failure, channel=channel_id
            )

    def _locked(self, channel_id: str, function, *arguments) -> defer.Deferred:
        lock = self._locks.setdefault(channel_id, defer.DeferredLock())

        def done(result):
            if not lock.locked and not lock.waiting:
                self._locks.pop(channel_id, None)
            return result

        return lock.run(function, *arguments).addBoth(done)

    @defer.inlineCallbacks
    def _reconcile(self, channel_id: str):
        redis = self._stores.redis
        raw = yield redis.get(keys.channel_info(channel_id))
        manual = int(
            (yield redis.execute_command("SISMEMBER", keys.STOPPED, channel_id))
        )
        self._trouble_over()
        running = self._channels.get(channel_id)

        if raw is None:
            self._candidates.discard(channel_id)
            self.stopped.discard(channel_id)
            self.broken.pop(channel_id, None)
            if running is not None:
                yield self._stop(channel_id, "record deleted")
            return

        config = self._parse(channel_id, raw)
        if config is None:
            self._candidates.discard(channel_id)
            if running is not None:
                yield self._stop(channel_id, "record refused")
                # The stopping channel wrote its own final status over the
                # refusal: say again why it no longer runs.
                self._stores.status.update(
                    channel_id, refusal_status(channel_id, self._refusals[channel_id])
                )
            return

        if manual:
            self._candidates.discard(channel_id)
            if channel_id not in self.stopped:
                self.stopped.add(channel_id)
                self._stores.status.update(
                    channel_id, {"state": "stopped", "stop_reason": MANUAL_STOP}
                )
            if running is not None:
                yield self._stop(channel_id, MANUAL_STOP, manual=True)
            return

        self.stopped.discard(channel_id)
        self._candidates.add(channel_id)
        if running is not None:
            if same_config(running.config, config):
                return
            log.info(
                "channel record changed, restarting channel={channel}",
                channel=channel_id,
            )
            yield self._stop(channel_id, "record changed", release=False)

        if not self.running or not (yield self.leases.acquire(channel_id)):
            return
        if not self.running:  # the process began to stop meanwhile
            yield self._release(channel_id)
            return
        yield self._start(channel_id, config)

    def _parse(self, channel_id: str, raw: Any) -> ChannelConfig | None:
        """The record's config, or None after reporting why it is refused."""
        try:
            config = parse_channel_record(channel_id, raw)
            if self._config_filter is not None:
                config = self._config_filter(config)
        except ChannelConfigError as error:
            if self.broken.get(channel_id) != str(error):
                report_refused(channel_id, error, self._stores.status)
            self.broken[channel_id] = str(error)
            self._refusals[channel_id] = error
            return None
        self.broken.pop(channel_id, None)
        return config

    @defer.inlineCallbacks
    def _start(self, channel_id: str, config: ChannelConfig):
        channel = ChannelService(
            config,
            self._stores,
            self._clock,
            self._endpoint_factory,
            flush_timeout=self.stop_timeout,
            lease_owner=self.owner,
        )
        self._channels[channel_id] = channel
        try:
            yield channel.startService()
        except Exception as error:
            if self._channels.get(channel_id) is channel:
                del self._channels[channel_id]
            self._report_trouble(f"starting channel {channel_id}", error)
            yield self._stop_service(channel)
            yield self.leases.release(channel_id)
            return
        if self._channels.get(channel_id) is not channel:
            return  # stopped while it started (the process is stopping)
        self._stores.status.update(
            channel_id,
            {
                "owner": self.owner,
                "stop_reason": "",
                "error_field": "",
                "error_reason": "",
            },
        )
        # Claimed again for a few lease times while another consumer has
        # entries pending (they become claimable a lease time after their
        # last delivery). Not waited for: the claim may queue behind a
        # blocking MT read.
        self._taken_at[channel_id] = self._clock.seconds()
        self._claim(channel_id)

    @defer.inlineCallbacks
    def _stop(
        self,
        channel_id: str,
        reason: str,
        manual: bool = False,
        release: bool = True,
    ):
        """Graceful stop (ChannelService.stopService: intake stops, answers are
        awaited for stop_timeout, parts not sent stay pending in the stream);
        the lease is released afterwards unless restarting, or unless the
        channel's last writes are not written (the lease then lapses: no
        other process may take the channel over before they are)."""
        channel = self._channels.pop(channel_id, None)
        if channel is None:
            return
        log.info(
            "stopping channel={channel}: {reason}", channel=channel_id, reason=reason
        )
        yield self._stop_service(channel)
        self._stores.status.update(channel_id, {"owner": "", "stop_reason": reason})
        if manual:
            yield self._forget(channel)
        if release and channel.flushed and self.leases.holds(channel_id):
            yield self._release(channel_id)

    def _release(self, channel_id: str) -> defer.Deferred:
        """Give the channel's lease back, waiting for Redis at most
        `stop_timeout`: an unanswered release lapses with the lease time."""
        releasing = self.leases.release(channel_id)
        releasing.addTimeout(self.stop_timeout, self._clock)

        def failed(failure):
            log.warn(
                "lease of channel={channel} not given back ({reason}); it lapses "
                "within the lease time",
                channel=channel_id,
                reason=(
                    f"no answer from Redis within {self.stop_timeout:g} s"
                    if failure.check(defer.TimeoutError)
                    else failure_text(failure)
                ),
            )

        return releasing.addErrback(failed)

    def _stop_service(self, channel: ChannelService) -> defer.Deferred:
        """Stop a channel's service once, however many callers ask."""
        stopping = self._stopping.get(channel)
        if stopping is None:
            stopping = defer.maybeDeferred(channel.stopService)
            self._stopping[channel] = stopping

            def done(result):
                self._stopping.pop(channel, None)
                return result

            stopping.addErrback(
                lambda failure: log.failure("channel stop failed", failure)
            ).addBoth(done)
        result: defer.Deferred = defer.Deferred()
        stopping.addBoth(lambda value: (result.callback(None), value)[1])
        return result

    @defer.inlineCallbacks
    def _forget(self, channel: ChannelService):
        """After a manual stop: resolve what the channel left in flight, then
        drop its cached Sequence_Id and in-flight keys (ChannelService.forget)."""
        left = yield channel.forget()
        if left:
            log.warn(
                "manual stop keeps {left} unresolved in-flight entries "
                "channel={channel}",
                left=left,
                channel=channel.config.channel_id,
            )

    # -- helpers ---------------------------------------------------------------

    def _publish(self, command: Command) -> defer.Deferred:
        return self._stores.redis.execute_command(
            "PUBLISH", keys.CONTROL, command.to_json()
        )

    def _report_trouble(self, doing: str, error: BaseException) -> None:
        self._trouble.failed(doing, error)

    def _trouble_over(self) -> None:
        self._trouble.recovered()
