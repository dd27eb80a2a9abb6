# Tests for the AUTH/SELECT handshake of cmppsvc.redisprotocol.
"""A connection lost during the AUTH/SELECT handshake is made again, like any
lost connection; a refused password stops reconnecting, logged once, the
password never shown. Against a fake Redis on 127.0.0.1 and in memory."""

from __future__ import annotations

from collections.abc import Callable

import txredisapi
from twisted.internet import defer, protocol, reactor
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from cmppsvc.redisconn import connect_redis, parse_redis_url
from cmppsvc.redisprotocol import FastRedisProtocol, FastSentinelProtocol
from cmppsvc.reload import RecordWatcher
from cmppsvc.resp import Reader, pack_command

SECRET = "s3cret:pa/ss@word"
URL_SECRET = "s3cret%3Apa%2Fss%40word"

REDIS_ADDRESS = IPv4Address("TCP", "127.0.0.1", 6379)

#: The longest a test waits for a reply: a guard, not a measured figure.
PATIENCE = 5.0


def errors_logged(events: list[dict]) -> list[str]:
    """The error lines cmppsvc.redisprotocol logged, as text."""
    return [
        formatEvent(event)
        for event in events
        if event.get("log_namespace") == "cmppsvc.redisprotocol"
        and event.get("log_level") == LogLevel.error
    ]


CLOSE = object()
SILENCE = object()
WRONGPASS = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"


class FakeRedisConnection(protocol.Protocol):
    """One client connection of `FakeRedis`: each command read is answered
    with what `FakeRedis.answer` says (bytes, CLOSE or SILENCE)."""

    def connectionMade(self):
        self.server = self.factory.server
        self.number = len(self.server.connections)
        self.commands: list[list[str]] = []
        self.closed = defer.Deferred()
        self.server.connections.append(self)
        self.reader = Reader()

    def connectionLost(self, reason):
        self.closed.callback(None)

    def dataReceived(self, data):
        self.reader.feed(data)
        command = self.reader.gets()
        while command is not False:
            command = [part.decode() for part in command]
            self.commands.append(command)
            reply = self.server.answer(self, command)
            if reply is CLOSE:
                self.transport.loseConnection()
                return
            if reply is not SILENCE:
                self.transport.write(reply)
            command = self.reader.gets()


class FakeRedis(protocol.Factory):
    """A Redis server on 127.0.0.1 that answers as `answer(connection, command)`
    decides; it records its connections and what each was sent."""

    protocol = FakeRedisConnection

    def __init__(self, answer: Callable[[FakeRedisConnection, list], object]):
        self.server = self
        self.answer = answer
        self.connections: list[FakeRedisConnection] = []

    def start(self, test: TestCase) -> int:
        port = reactor.listenTCP(0, self, interface="127.0.0.1")
        test.addCleanup(self._stop, port)
        self.port = port.getHost().port
        return self.port

    def _stop(self, port):
        for connection in self.connections:
            connection.transport.abortConnection()
        return port.stopListening()


def usual_reply(connection: FakeRedisConnection, command: list) -> bytes:
    """What a Redis server that knows the password answers."""
    name = command[0].upper()
    if name == "PING":
        return b"+PONG\r\n"
    if name in ("AUTH", "SELECT"):
        return b"+OK\r\n"
    return b"-ERR unknown command\r\n"


def first_connection(does: object, to: str) -> Callable:
    """An answer that `does` CLOSE or SILENCE to command `to` on the first
    connection, and answers as usual otherwise."""

    def answer(connection: FakeRedisConnection, command: list) -> object:
        if connection.number == 0 and command[0].upper() == to:
            return does
        return usual_reply(connection, command)

    return answer


class HandshakeLoopbackTests(TestCase):
    """cmppsvc connections (`connect_redis`) against a fake Redis on 127.0.0.1."""

    timeout = 20

    def setUp(self):
        self.events: list[dict] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def connect(self, answer: Callable, path: str = "/0", **options):
        server = FakeRedis(answer)
        port = server.start(self)
        connection = connect_redis(
            f"redis://:{URL_SECRET}@127.0.0.1:{port}{path}", **options
        )
        self.addCleanup(connection.disconnect)
        return server, connection

    @defer.inlineCallbacks
    def answered(self, server: FakeRedis, connection, *command):
        """The reply to `command`, or a failure saying how far the pool got."""
        try:
            reply = yield connection.execute_command(*command).addTimeout(
                PATIENCE, reactor
            )
        except defer.TimeoutError:
            self.fail(
                f"no reply to {command[0]}: the server saw "
                f"{len(server.connections)} connection(s); the pool stopped "
                f"reconnecting: {connection._factory.stopped}"
            )
        return reply

    def assert_secret_never_logged(self):
        for event in self.events:
            self.assertNotIn(SECRET, formatEvent(event))
            self.assertNotIn(SECRET, repr(event))

    @defer.inlineCallbacks
    def test_connection_lost_during_auth_is_made_again(self):
        server, connection = self.connect(first_connection(CLOSE, "AUTH"))
        reply = yield self.answered(server, connection, "PING")
        self.assertEqual(reply, "PONG")
        self.assertEqual(
            [each.commands[0] for each in server.connections],
            [["AUTH", SECRET], ["AUTH", SECRET]],
        )
        self.assertFalse(connection._factory.stopped)
        self.assert_secret_never_logged()

    @defer.inlineCallbacks
    def test_connection_lost_during_select_is_made_again(self):
        server, connection = self.connect(first_connection(CLOSE, "SELECT"), "/3")
        reply = yield self.answered(server, connection, "PING")
        self.assertEqual(reply, "PONG")
        self.assertEqual(len(server.connections), 2)
        self.assertEqual(
            server.connections[1].commands[:2], [["AUTH", SECRET], ["SELECT", "3"]]
        )

    @defer.inlineCallbacks
    def test_no_reply_to_auth_in_time_is_made_again(self):
        # txredisapi's reply timeout aborts the connection that did not answer.
        server, connection = self.connect(
            first_connection(SILENCE, "AUTH"), reply_timeout=0.3
        )
        reply = yield self.answered(server, connection, "PING")
        self.assertEqual(reply, "PONG")
        self.assertEqual(len(server.connections), 2)

    @defer.inlineCallbacks
    def test_refused_password_stops_reconnecting_logged_once(self):
        refused = defer.Deferred()

        def answer(connection, command):
            if command[0].upper() == "AUTH":
                refused.callback(connection)
                return WRONGPASS
            return usual_reply(connection, command)

        server, connection = self.connect(answer)
        refused_connection = yield refused.addTimeout(PATIENCE, reactor)
        # Closed by the client, which has given up by then.
        yield refused_connection.closed.addTimeout(PATIENCE, reactor)

        factory = connection._factory
        self.assertTrue(factory.stopped)
        self.assertFalse(any(slot.service.running for slot in factory.slots))
        # A command then fails at once; no connection is made again.
        yield self.assertFailure(connection.ping(), txredisapi.ConnectionError)
        self.assertEqual(len(server.connections), 1)

        logged = errors_logged(self.events)
        self.assertEqual(len(logged), 1)
        self.assertIn(
            f"Redis 127.0.0.1:{server.port} refused AUTH (WRONGPASS invalid "
            "username-password pair",
            logged[0],
        )
        self.assert_secret_never_logged()


def subscribing_reply(connection: FakeRedisConnection, command: list) -> bytes:
    """The usual answers, and a subscription's confirmation for each
    SUBSCRIBE and PSUBSCRIBE, as Redis sends them."""
    name = command[0].lower()
    if name in ("subscribe", "psubscribe"):
        return b"".join(
            pack_command((name, target, index))
            for index, target in enumerate(command[1:], 1)
        )
    return usual_reply(connection, command)


class WatcherHandshakeTests(TestCase):
    """The record watcher's pub/sub connection takes the same handshake."""

    timeout = 20

    @defer.inlineCallbacks
    def test_subscribes_after_a_connection_lost_during_auth(self):
        def answer(connection, command):
            if connection.number == 0 and command[0].upper() == "AUTH":
                return CLOSE
            return subscribing_reply(connection, command)

        server = FakeRedis(answer)
        port = server.start(self)
        subscribed = defer.Deferred()
        watcher = RecordWatcher(
            parse_redis_url(f"redis://:{URL_SECRET}@127.0.0.1:{port}/0"),
            reactor,
            lambda channel_id: None,
            lambda command: None,
            rescan_interval=0,
        )
        watcher.subscribed = lambda: subscribed.callback(None)
        watcher.startService()
        self.addCleanup(watcher.stopService)

        yield subscribed.addTimeout(PATIENCE, reactor)
        self.assertEqual(len(server.connections), 2)
        self.assertEqual(server.connections[1].commands[0], ["AUTH", SECRET])


class HandshakeFactory:
    """The part of a txredisapi factory the handshake uses, recorded."""

    stopped = False
    isLazy = True
    is_master = True

    def __init__(self):
        self.refusals: list[str] = []

    def stopTrying(self):
        self.stopped = True
        return defer.succeed(None)

    def connectionError(self, why: str) -> None:
        self.refusals.append(why)


class HandshakeMemoryTests(SynchronousTestCase):
    """The handshake step by step, over an in-memory transport."""

    def setUp(self):
        self.events: list[dict] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def opened(self, kind=FastRedisProtocol, **options):
        redis = kind(charset="utf-8", convertNumbers=False, password=SECRET, **options)
        redis.factory = HandshakeFactory()
        self.ready = redis.whenConnected()
        redis.makeConnection(StringTransport(peerAddress=REDIS_ADDRESS))
        return redis

    def sent(self, redis) -> bytes:
        written = redis.transport.value()
        redis.transport.clear()
        return written

    def logged(self) -> list[str]:
        return errors_logged(self.events)

    def test_auth_then_select_then_usable(self):
        redis = self.opened(dbid=3)
        self.assertEqual(self.sent(redis), pack_command(("AUTH", SECRET)))
        redis.dataReceived(b"+OK\r\n")
        self.assertEqual(self.sent(redis), pack_command(("SELECT", 3)))
        self.assertNoResult(self.ready)
        redis.dataReceived(b"+OK\r\n")
        self.assertIs(self.successResultOf(self.ready), redis)

    def test_busy_server_is_transient(self):
        redis = self.opened()
        redis.dataReceived(b"-LOADING Redis is loading the dataset in memory\r\n")
        self.assertTrue(redis.transport.disconnecting)
        self.assertFalse(redis.factory.stopped)
        self.assertNoResult(self.ready)

    def test_database_out_of_range_is_a_refusal(self):
        redis = self.opened(dbid=99)
        redis.dataReceived(b"+OK\r\n-ERR DB index is out of range\r\n")
        self.assertTrue(redis.factory.stopped)
        self.assertTrue(redis.transport.disconnecting)
        self.assertIn("refused SELECT (ERR DB index is out of range)", self.logged()[0])

    def test_a_password_echoed_by_the_server_is_masked(self):
        redis = self.opened()
        redis.factory.isLazy = False
        redis.dataReceived(f"-ERR AUTH {SECRET} called without password\r\n".encode())
        self.assertEqual(
            redis.factory.refusals,
            ["Redis refused AUTH: ERR AUTH *** called without password"],
        )
        self.assertEqual(len(self.logged()), 1)
        self.assertNotIn(SECRET, self.logged()[0])

    def test_second_refusal_of_a_pool_is_not_logged_again(self):
        factory = HandshakeFactory()
        for _ in range(2):
            redis = self.opened()
            redis.factory = factory
            redis.dataReceived(WRONGPASS)
        self.assertEqual(len(self.logged()), 1)

    def test_sentinel_master_role_checked_after_auth(self):
        redis = self.opened(FastSentinelProtocol)
        # One AUTH, before anything else (txredisapi's sends it twice).
        self.assertEqual(self.sent(redis), pack_command(("AUTH", SECRET)))
        redis.dataReceived(b"+OK\r\n")
        self.assertEqual(self.sent(redis), pack_command(("ROLE",)))
        redis.dataReceived(b"*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n")
        self.assertIs(self.successResultOf(self.ready), redis)

    def test_sentinel_connection_lost_during_auth_keeps_reconnecting(self):
        redis = self.opened(FastSentinelProtocol)
        redis.connectionLost(Failure(ConnectionDone()))
        self.assertFalse(redis.factory.stopped)
        self.assertNoResult(self.ready)
        self.assertEqual(self.logged(), [])

    def test_a_reply_that_is_not_redis_is_one_error_line(self):
        redis = self.opened()
        redis.transport.abortConnection = lambda: setattr(redis, "aborted", True)
        redis.dataReceived(b"HTTP/1.1 400 Bad Request\r\n\r\n")

        self.assertTrue(getattr(redis, "aborted", False))
        [line] = self.logged()
        self.assertIn("not the Redis protocol", line)
        self.assertIn("127.0.0.1:6379", line)
        self.assertNotIn(SECRET, line)
