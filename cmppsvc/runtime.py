# -*- test-case-name: tests.test_runtime -*-
"""The cmppsvc process: Redis, the shared stores and the channel collection.

`CmppService` is what `twistd cmppsvc`, `cmppsvc.tac` and an embedding
application run. Starting it connects to Redis (or first starts a private
`redis-server` when no address is given), builds the stores every channel
shares, and loads the channels. Stopping it stops the channels gracefully,
flushes every write still queued, and only then lets Redis go: twistd and
`twisted.application` wait for the Deferred `stopService` returns, from the
reactor's `before shutdown` trigger.

A stop is bounded even while Redis is unreachable: a start still under way is
cancelled, and each step that needs Redis waits at most `stop_timeout` seconds
(the channels' own waits: cmppsvc.collection). A step that gives up says so
once in the log, with what is left unwritten; writes still queued at the end
are lost with the process, and what they would have recorded is recovered at
the next start (the MT entries stay pending; parts in flight follow the
channel's restart policy: cmppsvc.recovery).
"""

from __future__ import annotations

import gc
import os
import socket
from collections.abc import Callable
from typing import Any

from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from cmppsvc.channel import SharedStores
from cmppsvc.collection import ChannelCollection
from cmppsvc.config import ChannelConfig
from cmppsvc.events import MAXLEN, EventWriter
from cmppsvc.httpserver import HttpApiService, HttpListenError
from cmppsvc.lease import DEFAULT_TTL
from cmppsvc.localredis import LocalRedis, RedisServerError
from cmppsvc.msgindex import TTL, MsgIdIndex
from cmppsvc.mtqueue import STALE_IDLE, MTReader
from cmppsvc.redisconn import RedisAddress, connect_redis
from cmppsvc.redisoutage import RetryingReads
from cmppsvc.reload import DEFAULT_RESCAN_INTERVAL, RecordWatcher
from cmppsvc.sequence import RedisSequenceStore
from cmppsvc.status import StatusWriter
from cmppsvc.writebehind import INTERVAL, MAX_BATCH, WriteBehind

log = Logger(namespace="cmppsvc.runtime")

#: Default bound (seconds) of each step of a stop that cannot finish (Redis
#: unreachable): the MT reader, the flush of queued writes, Redis itself.
STOP_TIMEOUT = 10.0


class CmppService(MultiService):
    """Everything one cmppsvc process runs.

    `redis_address` is where the channel records live; when it is None a
    private redis-server is started on 127.0.0.1:`redis_port` (0: any free
    port) with its data under `redis_directory`.
    `before_load`, when given, is called with the Redis connection before the
    channels are loaded (the demo uses it to load fixture records).
    `lease_ttl` is the channel lease time (cmppsvc.lease), `rescan_interval`
    the period of the safety-net rescan of every record (cmppsvc.reload).
    `write_batch` and `write_interval` are the write-behind queue's largest
    batch and wait (cmppsvc.writebehind), `msgid_ttl` the lifetime in seconds
    of a Msg_Id index entry (cmppsvc.msgindex), `events_maxlen` the events
    stream's approximate cap (cmppsvc.events), `stop_timeout` the bound of
    each step of a stop that cannot finish. `http_endpoint`, a Twisted server
    endpoint description (``tcp:8080:interface=127.0.0.1``), serves the HTTP
    API (cmppsvc.httpapi) there; `clock` is then the reactor that listens.
    The process's lease owner name is `consumer_name` plus a random suffix,
    unique per start; it is shown as `owner` in the channel status.
    """

    def __init__(
        self,
        redis_address: RedisAddress | None,
        clock: IReactorTime,
        redis_directory: str | None = None,
        redis_port: int = 0,
        consumer_name: str | None = None,
        endpoint_factory: Callable[..., Any] | None = None,
        config_filter: Callable[[ChannelConfig], ChannelConfig] | None = None,
        before_load: Callable[[Any], Any] | None = None,
        lease_ttl: float = DEFAULT_TTL,
        lease_margin: float | None = None,
        rescan_interval: float = DEFAULT_RESCAN_INTERVAL,
        write_batch: int = MAX_BATCH,
        write_interval: float = INTERVAL,
        msgid_ttl: float = TTL,
        events_maxlen: int = MAXLEN,
        stop_timeout: float = STOP_TIMEOUT,
        http_endpoint: str | None = None,
    ) -> None:
        super().__init__()
        self._redis_address = redis_address
        self._redis_directory = redis_directory
        self._redis_port = redis_port
        self._clock = clock
        self._consumer_name = consumer_name or socket.gethostname()
        self._endpoint_factory = endpoint_factory
        self._config_filter = config_filter
        self._before_load = before_load
        self._lease_ttl = lease_ttl
        self._lease_margin = lease_margin
        self._rescan_interval = rescan_interval
        self._write_batch = write_batch
        self._write_interval = write_interval
        self._msgid_ttl = msgid_ttl
        self._events_maxlen = events_maxlen
        self.stop_timeout = stop_timeout
        self.owner = f"{self._consumer_name}:{os.urandom(4).hex()}"
        self.watcher: RecordWatcher | None = None
        self.local_redis: LocalRedis | None = None
        self.redis: Any = None
        self._reads: RetryingReads | None = None
        self.stores: SharedStores | None = None
        self.collection: ChannelCollection | None = None
        self._started: defer.Deferred | None = None
        self._start_error: defer.Failure | None = None
        self.http: HttpApiService | None = None
        if http_endpoint:
            self.http = HttpApiService(http_endpoint, self, clock)
            self.http.setServiceParent(self)

    def startService(self) -> None:
        """Start in the background; `whenStarted()` tells when it is done."""
        super().startService()
        self._started = self._start()
        self._started.addErrback(self._start_failed)

    def whenStarted(self) -> defer.Deferred:
        """A Deferred that fires (with the service) once Redis is up and the
        channels are loaded; it fails when the start failed or was cancelled
        by a stop."""
        result: defer.Deferred = defer.Deferred()
        if self._started is None:
            result.errback(RuntimeError("the service has not been started"))
            return result

        def done(value):
            if self._start_error is not None:
                result.errback(self._start_error)
            else:
                result.callback(value)
            return value

        self._started.addBoth(done)
        return result

    def _private_redis_lost(self) -> None:
        """Another program took the private server's port while it was down:
        whatever answers there now is not ours, so nothing more is written."""
        log.critical(
            "the private redis-server is gone and its port taken: writes stop; "
            "restart cmppsvc"
        )
        if self.stores is not None:
            self.stores.writer.close()

    @defer.inlineCallbacks
    def _start(self):
        if self.http is not None:
            # Listening is the quick part to fail: find out before Redis.
            yield self.http.whenListening()

        address = self._redis_address
        if address is None:
            self.local_redis = LocalRedis(self._redis_directory, port=self._redis_port)
            self.local_redis.on_port_taken = self._private_redis_lost
            yield self.local_redis.start()
            log.info(
                "started a private redis-server url={url} directory={directory}",
                url=self.local_redis.url,
                directory=self.local_redis.directory,
            )
            address = RedisAddress.from_url(self.local_redis.url)

        log.info("connecting to Redis at {address}", address=str(address))
        self.redis = yield connect_redis(address)
        # Reads survive a Redis restart; writes go through the write-behind
        # queue, which retries them itself.
        self._reads = RetryingReads(self.redis, self._clock)
        if self._before_load is not None:
            yield self._before_load(self.redis)

        writer = WriteBehind(
            self.redis,
            self._clock,
            max_batch=self._write_batch,
            interval=self._write_interval,
        )
        self.stores = SharedStores(
            redis=self._reads,
            writer=writer,
            events=EventWriter(writer, maxlen=self._events_maxlen),
            msgindex=MsgIdIndex(writer, self._reads, self._clock, ttl=self._msgid_ttl),
            status=StatusWriter(writer),
            mt_reader=MTReader(
                lambda: connect_redis(address),
                writer,
                self._consumer_name,
                self._clock,
                # Never sooner than a takeover would claim them.
                stale_idle=max(STALE_IDLE, 2 * self._lease_ttl),
            ),
            sequence_store=RedisSequenceStore(self.redis),
        )
        self.collection = ChannelCollection(
            self.stores,
            self._clock,
            self._endpoint_factory,
            self._config_filter,
            owner=self.owner,
            lease_ttl=self._lease_ttl,
            lease_margin=self._lease_margin,
            stop_timeout=self.stop_timeout,
        )
        self.stores.mt_reader.start()
        self.collection.setServiceParent(self)
        yield self.collection.whenChecked()
        self.watcher = RecordWatcher(
            address,
            self._clock,
            self.collection.reload_channel,
            self.collection.handle_command,
            self._rescan_interval,
        )
        self.watcher.setServiceParent(self)

        # What start-up built lives as long as the process: moved out of the
        # collector's view, it no longer lengthens every full collection,
        # whose pauses are the service's latency tail.
        if hasattr(gc, "freeze"):  # CPython's; PyPy's collector has none
            gc.freeze()
        return self

    def _start_failed(self, failure):
        # Consumed here, kept for whenStarted(): nobody may be waiting.
        self._start_error = failure
        if failure.check(defer.CancelledError):
            log.info("cmppsvc start cancelled by a stop")
        elif failure.check(RedisServerError, HttpListenError):
            # The operator's to fix, and the message says how: no traceback.
            log.error("cmppsvc cannot start: {reason}", reason=failure.value)
        else:
            log.failure("cmppsvc could not start", failure)

    @defer.inlineCallbacks
    def stopService(self):
        """Stop channels gracefully, flush every queued write, then Redis.

        A start still under way is cancelled first; each step that depends on
        Redis waits at most `stop_timeout` seconds."""
        if self._started is not None and not self._started.called:
            self._started.cancel()
        if self.http is not None:
            yield self.http.stopService()  # no new requests while stopping
        if self.watcher is not None and self.watcher.parent is self:
            yield self._bounded(self.watcher.disownServiceParent(), "pub/sub")
        collection = self.collection
        if collection is not None and collection.parent is self:
            # Bounded inside (each wait on Redis); this bound is the backstop.
            yield self._bounded(
                collection.disownServiceParent(),
                "the channels",
                seconds=collection.longest_stop() + self.stop_timeout,
                left=lambda: {"channels_stopping": collection.stopping_count()},
            )
        if self.stores is not None:
            yield self._bounded(self.stores.mt_reader.stop(), "the MT reader")

        yield super().stopService()

        if self.stores is not None:
            writer = self.stores.writer
            yield self._bounded(
                writer.flush(),
                "queued writes",
                left=lambda: {"writes_not_written": writer.backlog},
                note=(
                    "lost with the process; the next start recovers them: "
                    "MT entries stay pending, parts in flight follow the "
                    "restart policy"
                ),
            )
            writer.close()
        if self._reads is not None:
            yield self._bounded(self._reads.disconnect(), "Redis")
        elif self.redis is not None:
            yield self._bounded(self.redis.disconnect(), "Redis")
        if self.local_redis is not None:
            yield self.local_redis.stop()

    def _bounded(
        self,
        waiting: Any,
        what: str,
        seconds: float | None = None,
        left: Callable[[], dict[str, int]] | None = None,
        note: str = "",
    ) -> defer.Deferred:
        """`waiting` (a Deferred or not), cancelled after `seconds` (default:
        `stop_timeout`) with one log line naming what is `left` (counts).
        Fires with None either way: a stop goes on whatever a step did."""
        if seconds is None:
            seconds = self.stop_timeout
        waiting = defer.maybeDeferred(lambda: waiting)
        given_up: list[bool] = []

        def give_up() -> None:
            # Said before cancelling: a cancelled step may end quietly.
            given_up.append(True)
            counts = left() if left is not None else {}
            log.warn(
                "stopping: gave up waiting for {what} after {seconds} s{left}{note}",
                what=what,
                seconds=seconds,
                left="".join(f" {name}={value}" for name, value in counts.items()),
                note=f" ({note})" if note else "",
                **counts,
            )
            waiting.cancel()

        timer = self._clock.callLater(seconds, give_up)

        def ended(result: Any) -> None:
            if timer.active():
                timer.cancel()
            if isinstance(result, Failure) and not given_up:
                if not result.check(defer.CancelledError):  # not a failure
                    log.failure("stopping: {what} failed", result, what=what)

        return waiting.addBoth(ended)
