"""The cmppsvc process: Redis, the shared stores and the channel collection.

`CmppService` is what `twistd cmppsvc`, `cmppsvc.tac` and an embedding
application run. Starting it connects to Redis (or first starts a private
`redis-server` when no address is given), builds the stores every channel
shares, and loads the channels. Stopping it stops the channels gracefully,
flushes every write still queued, and only then lets Redis go: twistd and
`twisted.application` wait for the Deferred `stopService` returns, from the
reactor's `before shutdown` trigger.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from cmppsvc.channel import SharedStores
from cmppsvc.collection import ChannelCollection
from cmppsvc.config import ChannelConfig
from cmppsvc.events import EventWriter
from cmppsvc.lease import DEFAULT_TTL
from cmppsvc.localredis import LocalRedis
from cmppsvc.msgindex import MsgIdIndex
from cmppsvc.mtqueue import MTReader
from cmppsvc.redisconn import RedisAddress, connect_redis
from cmppsvc.reload import DEFAULT_RESCAN_INTERVAL, RecordWatcher
from cmppsvc.sequence import RedisSequenceStore
from cmppsvc.status import StatusWriter
from cmppsvc.writebehind import WriteBehind

log = Logger(namespace="cmppsvc.runtime")


class CmppService(MultiService):
    """Everything one cmppsvc process runs.

    `redis_address` is where the channel records live; when it is None a
    private redis-server is started on 127.0.0.1:`redis_port` (0: any free
    port) with its data under `redis_directory`.
    `before_load`, when given, is called with the Redis connection before the
    channels are loaded (the demo uses it to load fixture records).
    `lease_ttl` is the channel lease time (cmppsvc.lease), `rescan_interval`
    the period of the safety-net rescan of every record (cmppsvc.reload).
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
        self.owner = f"{self._consumer_name}:{os.urandom(4).hex()}"
        self.watcher: RecordWatcher | None = None
        self.local_redis: LocalRedis | None = None
        self.redis: Any = None
        self.stores: SharedStores | None = None
        self.collection: ChannelCollection | None = None
        self._started: defer.Deferred | None = None

    def startService(self) -> defer.Deferred:
        """Start in the background; `whenStarted()` tells when it is done."""
        super().startService()
        self._started = self._start()
        self._started.addErrback(self._start_failed)
        return self._started

    def whenStarted(self) -> defer.Deferred:
        """A Deferred that fires once Redis is up and the channels are loaded."""
        result: defer.Deferred = defer.Deferred()
        if self._started is None:
            result.errback(RuntimeError("the service has not been started"))
            return result

        self._started.addBoth(lambda value: (result.callback(value), value)[1])
        return result

    @defer.inlineCallbacks
    def _start(self):
        address = self._redis_address
        if address is None:
            self.local_redis = LocalRedis(self._redis_directory, port=self._redis_port)
            yield self.local_redis.start()
            log.info(
                "started a private redis-server url={url} directory={directory}",
                url=self.local_redis.url,
                directory=self.local_redis.directory,
            )
            address = RedisAddress.from_url(self.local_redis.url)

        log.info("connecting to Redis at {address}", address=str(address))
        self.redis = yield connect_redis(address)
        if self._before_load is not None:
            yield self._before_load(self.redis)

        writer = WriteBehind(self.redis, self._clock)
        self.stores = SharedStores(
            redis=self.redis,
            writer=writer,
            events=EventWriter(writer),
            msgindex=MsgIdIndex(writer, self.redis, self._clock),
            status=StatusWriter(writer),
            mt_reader=MTReader(
                lambda: connect_redis(address),
                writer,
                self._consumer_name,
                self._clock,
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
        return self

    def _start_failed(self, failure):
        log.failure("cmppsvc could not start", failure)
        return failure

    @defer.inlineCallbacks
    def stopService(self):
        """Stop channels gracefully, flush every queued write, then Redis."""
        if self._started is not None and not self._started.called:
            yield self._started
        if self.watcher is not None:
            yield self.watcher.disownServiceParent()
        if self.collection is not None:
            yield self.collection.disownServiceParent()
        if self.stores is not None:
            yield self.stores.mt_reader.stop()

        yield super().stopService()

        if self.stores is not None:
            yield self.stores.writer.flush()
        if self.redis is not None:
            yield self.redis.disconnect()
        if self.local_redis is not None:
            yield self.local_redis.stop()
