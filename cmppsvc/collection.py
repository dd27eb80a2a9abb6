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
- Several processes: a channel runs only in the process holding its lease
  (cmppsvc.lease). Every ``ttl / 3`` each process tries to take the leases of
  good records nobody holds, so a dead process's channels are taken over
  within the lease time; the new owner then claims the MT entries the old
  owner's consumer left pending. A process losing a lease stops the channel at
  once and aborts any connection left before the lease can expire.
- Manual stop (`stop_channel`): the id goes into ``cmppsvc:stopped`` first,
  then the owner stops the channel gracefully and, once its in-flight entries
  are resolved, deletes its cached Sequence_Id and in-flight keys; the Msg_Id
  index is kept so late reports still match. `start_channel` removes the id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import attrs
import txredisapi
from twisted.application.service import Service
from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from cmppsvc import keys
from cmppsvc.channel import ChannelService, SharedStores
from cmppsvc.commands import Command, check_channel_id
from cmppsvc.config import ChannelConfig, ChannelConfigError, parse_channel_record
from cmppsvc.configschema import BOOKKEEPING_FIELDS
from cmppsvc.lease import DEFAULT_TTL, LeaseKeeper
from cmppsvc.status import read as read_status

log = Logger(namespace="cmppsvc.collection")

SCAN_BATCH = 500

#: Takeover claims MT entries left pending this long by another consumer, for
#: this many lease times after taking a channel.
CLAIM_PERIOD_LEASES = 3

MANUAL_STOP = "stopped by an operator"


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


@defer.inlineCallbacks
def scan_channel_ids(redis: Any):
    """Every channel id that has a `channel-info:<id>` record."""
    ids: set[str] = set()
    cursor = 0
    prefix_length = len(keys.channel_info(""))
    while True:
        cursor, found = yield redis.execute_command(
            "SCAN", cursor, "MATCH", keys.channel_info_pattern(), "COUNT", SCAN_BATCH
        )
        ids.update(_text(key)[prefix_length:] for key in found)
        cursor = int(cursor)
        if cursor == 0:
            return sorted(ids)


def same_config(running: ChannelConfig, new: ChannelConfig) -> bool:
    """True when a new record would run exactly like the running one: the
    admin system's bookkeeping (configschema.BOOKKEEPING_FIELDS) and unknown
    fields do not count."""
    return all(
        getattr(running, field.name) == getattr(new, field.name)
        for field in attrs.fields(ChannelConfig)
        if field.name not in BOOKKEEPING_FIELDS and field.name != "extra"
    )


class ChannelCollection(Service):
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
    ) -> None:
        self._stores = stores
        self._clock = clock
        self._endpoint_factory = endpoint_factory
        self._config_filter = config_filter
        self.owner = owner
        self.leases = LeaseKeeper(
            stores.redis, owner, clock, self._lease_lost, lease_ttl, lease_margin
        )
        #: channel id -> why its record was refused
        self.broken: dict[str, str] = {}
        #: ids an operator stopped, as last seen
        self.stopped: set[str] = set()
        self._channels: dict[str, ChannelService] = {}
        self._stopping: dict[ChannelService, defer.Deferred] = {}
        self._candidates: set[str] = set()
        self._taken_at: dict[str, float] = {}
        self._locks: dict[str, defer.DeferredLock] = {}
        self._takeover: task.LoopingCall | None = None
        self._trouble = False
        self._first_check: defer.Deferred = defer.succeed(None)

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
        return self.reconcile(command.channel)

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
        """Stop every channel gracefully, then give its lease back."""
        super().stopService()
        if self._takeover is not None and self._takeover.running:
            self._takeover.stop()
        yield defer.DeferredList(
            [
                self._locked(channel_id, self._stop, channel_id, "process stopping")
                for channel_id in list(self._channels)
            ],
            consumeErrors=True,
        )
        yield defer.DeferredList(list(self._stopping.values()), consumeErrors=True)
        self.leases.stop()

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
        yield self._claim_all(list(self._channels))
        log.info(
            "channels checked records={records} running={running} "
            "broken={broken} stopped={stopped}",
            records=len(found),
            running=len(self._channels),
            broken=len(self.broken),
            stopped=len(self.stopped),
        )

    def reconcile(self, channel_id: str) -> defer.Deferred:
        """Bring one channel in line with its record (one at a time per id);
        a Redis failure is logged and left to the next rescan."""
        d = self._locked(channel_id, self._reconcile, channel_id)
        d.addErrback(self._reconcile_failed, channel_id)
        return d

    def _reconcile_failed(self, failure: Any, channel_id: str) -> None:
        if failure.check(txredisapi.ConnectionError, defer.TimeoutError):
            self._report_trouble(f"checking channel {channel_id}", failure.value)
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
            log.info("channel record changed, restarting channel={c}", c=channel_id)
            yield self._stop(channel_id, "record changed", release=False)

        if not self.running or not (yield self.leases.acquire(channel_id)):
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
                log.error(
                    "channel record refused channel={channel} field={field} "
                    "reason={reason}",
                    channel=channel_id,
                    field=error.field,
                    reason=error.reason,
                )
                self._stores.status.update(
                    channel_id,
                    {
                        "channel": channel_id,
                        "state": "broken",
                        "last_error": str(error),
                        "error_field": error.field,
                        "error_reason": error.reason,
                    },
                )
            self.broken[channel_id] = str(error)
            return None
        self.broken.pop(channel_id, None)
        return config

    @defer.inlineCallbacks
    def _start(self, channel_id: str, config: ChannelConfig):
        channel = ChannelService(
            config, self._stores, self._clock, self._endpoint_factory
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
        self._taken_at[channel_id] = self._clock.seconds()
        self._stores.status.update(
            channel_id,
            {"owner": self.owner, "stop_reason": "", "error_field": ""},
        )
        # not waited for: the claim may queue behind a blocking MT read
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
        the lease is released afterwards unless restarting."""
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
        if release and self.leases.holds(channel_id):
            yield self.leases.release(channel_id)

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
        """After a manual stop: drop the cached Sequence_Id and in-flight keys
        (the channel's own `forget` when it has one)."""
        channel_id = channel.config.channel_id
        forget = getattr(channel, "forget", None)
        if forget is not None:
            yield forget()
            return
        redis = self._stores.redis
        left = int((yield redis.execute_command("HLEN", keys.inflight(channel_id))))
        if left:
            log.warn(
                "manual stop keeps {left} unresolved in-flight entries channel={c}",
                left=left,
                c=channel_id,
            )
            return
        yield redis.execute_command(
            "DEL", keys.sequence(channel_id), keys.inflight(channel_id)
        )

    # -- leases ----------------------------------------------------------------

    def _lease_lost(self, channel_id: str, reason: str) -> None:
        """Stop at once; abort what is left before the lease can expire."""
        channel = self._channels.pop(channel_id, None)
        self._taken_at.pop(channel_id, None)
        if channel is None:
            return
        self._stores.mt_reader.remove_channel(channel_id)
        abort = self._clock.callLater(
            self.leases.margin * 0.8, self._abort_connections, channel
        )
        stopping = self._stop_service(channel)
        stopping.addBoth(lambda _: abort.active() and abort.cancel())
        self._stores.status.update(
            channel_id, {"owner": "", "stop_reason": f"lease lost: {reason}"}
        )

    @staticmethod
    def _abort_connections(channel: ChannelService) -> None:
        """Close every connection of a channel now (its lease is ending)."""
        connector = channel.connector
        for connection in getattr(connector, "connections", ()):
            service = getattr(connection, "service", None)
            if service is not None and service.running:
                service.stopService()
            transport = getattr(
                getattr(connection, "protocol", None), "transport", None
            )
            if transport is not None:
                transport.abortConnection()

    @defer.inlineCallbacks
    def _take_over(self):
        """Take the free leases of good records that run nowhere, and claim
        what the previous owners left pending."""
        free = sorted(self._candidates - set(self._channels) - set(self._locks))
        results = yield defer.DeferredList(
            [self.leases.acquire(channel_id) for channel_id in free],
            consumeErrors=True,
        )
        taken = []
        for channel_id, (success, result) in zip(free, results, strict=True):
            if not success:
                self._report_trouble("taking over channels", result.value)
            elif result:
                log.info("taking over channel={channel}", channel=channel_id)
                taken.append(channel_id)
        yield defer.DeferredList([self.reconcile(channel_id) for channel_id in taken])

        now = self._clock.seconds()
        recent = []
        for channel_id, taken_at in list(self._taken_at.items()):
            if now - taken_at > CLAIM_PERIOD_LEASES * self.leases.ttl:
                del self._taken_at[channel_id]
            else:
                recent.append(channel_id)
        yield self._claim_all(recent)

    def _claim_all(self, channel_ids: list[str]) -> defer.Deferred:
        """Claim for several channels at once (the claims share the MT
        reader's connection, which may be blocked in a read for a while)."""
        return defer.DeferredList(
            [self._claim(channel_id) for channel_id in channel_ids]
        )

    @defer.inlineCallbacks
    def _claim(self, channel_id: str):
        """Claim MT entries another consumer left pending a lease time."""
        if channel_id not in self._channels:
            return
        try:
            claimed = yield self._stores.mt_reader.claim_stale(
                channel_id, self.leases.ttl_ms
            )
        except KeyError:
            return
        except txredisapi.ResponseError as error:
            if "NOGROUP" not in str(error):
                self._report_trouble(f"claiming entries of channel {channel_id}", error)
            return
        except Exception as error:
            self._report_trouble(f"claiming entries of channel {channel_id}", error)
            return
        if claimed:
            log.info(
                "claimed {count} MT entries left by another process channel={c}",
                count=claimed,
                c=channel_id,
            )

    # -- helpers ---------------------------------------------------------------

    def _publish(self, command: Command) -> defer.Deferred:
        return self._stores.redis.execute_command(
            "PUBLISH", keys.CONTROL, command.to_json()
        )

    def _report_trouble(self, doing: str, error: BaseException) -> None:
        if not self._trouble:
            log.error(
                "Redis trouble while {doing}, retrying later: {error}",
                doing=doing,
                error=str(error)[:200] or type(error).__name__,
            )
        self._trouble = True

    def _trouble_over(self) -> None:
        if self._trouble:
            log.info("Redis answers again; channels are being checked")
        self._trouble = False
