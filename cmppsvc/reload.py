# -*- test-case-name: tests.test_reload -*-
"""Noticing changes of the channel records, and operator commands.

Three sources tell the collection that a `channel-info:<id>` record may have
changed; each one ends in ``changed(channel_id)`` (None: look at every record):

1. ``cmppsvc:config-changed``: the admin system PUBLISHes the channel id after
   writing or deleting a record (``*`` or an empty message: all records).
2. Keyspace notifications ``__keyspace@<db>__:channel-info:*``, seen only when
   the server has ``notify-keyspace-events`` on (e.g. ``K$g``); cmppsvc never
   changes the server's configuration.
3. A periodic rescan of every record (``rescan_interval``), the safety net for
   lost notifications (a pub/sub connection drops messages while it is down).

The same pub/sub connection carries operator commands (``cmppsvc:control``,
see cmppsvc.commands), handed to ``command(Command)``. The connection is
separate from the command connection (a subscribed connection can do nothing
else) and reconnects by itself; after each (re)subscription every record is
looked at again, since notifications may have been missed meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import txredisapi
from twisted.application.service import Service
from twisted.internet import defer, task
from twisted.internet.endpoints import HostnameEndpoint, UNIXClientEndpoint
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from cmppsvc import keys
from cmppsvc.commands import BadCommand, Command, check_channel_id, parse_command
from cmppsvc.redisconn import RedisAddress, reply_text
from cmppsvc.redisprotocol import FastRedisProtocol

log = Logger(namespace="cmppsvc.reload")

#: Default seconds between two rescans of every record.
DEFAULT_RESCAN_INTERVAL = 30.0

#: Reconnect delays of the pub/sub connection (seconds): first, ceiling.
RECONNECT_INITIAL = 0.2
RECONNECT_MAX = 5.0


class _Subscriber(FastRedisProtocol, txredisapi.SubscriberProtocol):
    """Subscribes on every (re)connection and hands messages to the watcher.

    ``FastRedisProtocol`` sends AUTH and SELECT: a connection lost during
    them is made again, where txredisapi's own handshake stopped for good."""

    @defer.inlineCallbacks
    def connectionMade(self):
        # Nobody waits for this Deferred: every failure is handled here (a
        # Redis restarted meanwhile, AUTH or SELECT refused), by dropping the
        # connection, which the factory makes again with backoff.
        watcher = self.factory.watcher
        try:
            yield super().connectionMade()
            if not self.connected or self.transport.disconnecting:
                return
            # one name per command: each answers with exactly one reply
            yield self.subscribe(keys.CONFIG_CHANGED)
            yield self.subscribe(keys.CONTROL)
            yield self.psubscribe(watcher.keyspace_pattern)
        except Exception as error:
            log.warn("pub/sub subscription failed: {error}", error=str(error)[:200])
            if self.transport is not None:
                self.transport.loseConnection()
            return
        watcher.subscribed()

    def messageReceived(self, pattern, channel, message):
        self.factory.watcher.message_received(
            None if pattern is None else reply_text(pattern),
            reply_text(channel),
            message,
        )


class _SubscriberFactory(txredisapi.SubscriberFactory):
    protocol = _Subscriber


class RecordWatcher(Service):
    """Calls `changed(channel_id | None)` when records may have changed and
    `command(Command)` for each operator command."""

    def __init__(
        self,
        address: RedisAddress | None,
        clock: IReactorTime,
        changed: Callable[[str | None], Any],
        command: Callable[[Command], Any],
        rescan_interval: float = DEFAULT_RESCAN_INTERVAL,
        reactor: Any = None,
    ) -> None:
        self.address = address
        self.clock = clock
        self.changed = changed
        self.command = command
        self.rescan_interval = rescan_interval
        self.reactor = reactor
        self.keyspace_pattern = keys.keyspace_channel_info(
            address.db if address is not None else 0
        )
        self.subscriptions = 0
        self._factory: Any = None
        self._rescan: task.LoopingCall | None = None

    def startService(self) -> None:
        """Subscribe (when an address is known) and start the periodic rescan."""
        super().startService()
        self._factory = self._subscribe()
        if self.rescan_interval > 0:
            self._rescan = task.LoopingCall(self._rescan_all)
            self._rescan.clock = self.clock
            self._rescan.start(self.rescan_interval, now=False)

    def stopService(self) -> defer.Deferred:
        """Stop the rescan and close the pub/sub connection."""
        super().stopService()
        if self._rescan is not None and self._rescan.running:
            self._rescan.stop()
        factory, self._factory = self._factory, None
        if factory is None:
            return defer.succeed(None)
        return factory.disconnect().addErrback(lambda _: None)

    def _subscribe(self) -> Any:
        address = self.address
        if address is None:
            return None
        if address.scheme == "redis-sentinel":
            # txredisapi's Sentinel support has no subscriber: notifications
            # and commands then come with the periodic rescan only.
            log.warn(
                "no pub/sub with a Sentinel address: changes are seen by the "
                "rescan every {interval} s",
                interval=self.rescan_interval,
            )
            return None

        reactor = self.reactor
        if reactor is None:
            from twisted.internet import reactor
        if address.scheme == "unix":
            endpoint = UNIXClientEndpoint(reactor, address.path, timeout=10)
        else:
            endpoint = HostnameEndpoint(reactor, address.host, address.port, timeout=10)

        factory = _SubscriberFactory(isLazy=True)
        factory.watcher = self
        factory.password = address.password
        factory.username = address.username
        factory.dbid = address.db or None
        factory.convertNumbers = False
        factory.initialDelay = RECONNECT_INITIAL
        factory.maxDelay = RECONNECT_MAX
        factory.startConnecting(endpoint)
        return factory

    def _rescan_all(self) -> None:
        self._call(self.changed, None)

    def subscribed(self) -> None:
        """Called on each (re)subscription: notifications may have been lost."""
        self.subscriptions += 1
        log.info(
            "listening for record changes and commands (subscription {n})",
            n=self.subscriptions,
        )
        self._call(self.changed, None)

    def message_received(self, pattern: str | None, channel: str, message: Any) -> None:
        """Route one pub/sub message; a bad one is logged and dropped."""
        try:
            if pattern is not None:
                # __keyspace@0__:channel-info:<id> -> <id>
                prefix = keys.channel_info("")
                _, _, key = channel.partition(":")
                if key.startswith(prefix):
                    self._call(self.changed, check_channel_id(key[len(prefix) :]))
            elif channel == keys.CONFIG_CHANGED:
                text = reply_text(message).strip()
                self._call(
                    self.changed, None if text in ("", "*") else check_channel_id(text)
                )
            elif channel == keys.CONTROL:
                self._call(self.command, parse_command(message))
        except BadCommand as error:
            log.warn(
                "ignoring a bad message on {channel}: {error}",
                channel=channel[:80],
                error=str(error),
            )

    def _call(self, function: Callable[[Any], Any], argument: Any) -> None:
        d = defer.maybeDeferred(function, argument)
        d.addErrback(lambda failure: log.failure("handling a change failed", failure))
