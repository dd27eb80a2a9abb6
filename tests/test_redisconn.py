# Tests for cmppsvc.redisconn: Redis URLs, and connecting to a real redis-server.
"""Redis addresses parsed from URLs with the password masked; connect_redis
against a private redis-server on 127.0.0.1 (skipped without redis-server)."""

from __future__ import annotations

import os
import shutil
import socket

import txredisapi
from twisted.internet import defer, protocol, reactor, task
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from cmppsvc.localredis import free_port
from cmppsvc.redisconn import RedisAddress, connect_redis, parse_redis_url
from cmppsvc.redisoutage import RetryingReads, is_transient
from cmppsvc.redisprotocol import FastSentinelProtocol
from tests.redisserver import start_redis

SECRET = "pa:ss/w?rd@x"


class RedisUrlTests(SynchronousTestCase):
    """URL forms and their defaults."""

    def test_tcp(self):
        address = RedisAddress.from_url("redis://127.0.0.1")
        self.assertEqual(
            (address.scheme, address.host, address.port, address.db),
            ("redis", "127.0.0.1", 6379, 0),
        )
        self.assertIsNone(address.password)
        self.assertEqual(str(address), "redis://127.0.0.1:6379/0")

    def test_tcp_with_password_port_and_db(self):
        address = parse_redis_url("redis://:secret@localhost:6380/3")
        self.assertEqual(
            (address.host, address.port, address.db, address.password),
            ("localhost", 6380, 3, "secret"),
        )
        self.assertIsNone(address.username)

    def test_username(self):
        address = parse_redis_url("redis://app:secret@h")
        self.assertEqual((address.username, address.password), ("app", "secret"))
        self.assertEqual(str(address), "redis://app:***@h:6379/0")

    def test_password_with_special_characters(self):
        address = parse_redis_url(f"redis://:{SECRET}@h:1/2")
        self.assertEqual(address.password, SECRET)
        self.assertEqual((address.host, address.port, address.db), ("h", 1, 2))
        encoded = parse_redis_url("redis://:a%40b%3Ac@h")
        self.assertEqual(encoded.password, "a@b:c")

    def test_ipv6(self):
        address = parse_redis_url("redis://[::1]:7000")
        self.assertEqual((address.host, address.port), ("::1", 7000))
        self.assertEqual(str(address), "redis://[::1]:7000/0")

    def test_unix(self):
        address = parse_redis_url("unix:///run/redis/redis.sock?db=4")
        self.assertEqual(
            (address.scheme, address.path, address.db),
            ("unix", "/run/redis/redis.sock", 4),
        )
        address = parse_redis_url("unix:///tmp/r.sock?password=secret")
        self.assertEqual(address.password, "secret")
        self.assertEqual(str(address), "unix:///tmp/r.sock?password=***")

    def test_sentinel(self):
        address = parse_redis_url(
            "redis-sentinel://:secret@10.0.0.1:26380,10.0.0.2,[::1]:5/mymaster/2"
        )
        self.assertEqual(address.scheme, "redis-sentinel")
        self.assertEqual(
            address.sentinels,
            (("10.0.0.1", 26380), ("10.0.0.2", 26379), ("::1", 5)),
        )
        self.assertEqual((address.service_name, address.db), ("mymaster", 2))
        self.assertEqual(address.password, "secret")
        self.assertEqual(
            str(address),
            "redis-sentinel://:***@10.0.0.1:26380,10.0.0.2:26379,[::1]:5/mymaster/2",
        )

    def test_round_trip(self):
        for url in (
            "redis://127.0.0.1:6379/0",
            f"redis://user:{SECRET}@h:1/2",
            "unix:///tmp/r.sock?db=1&password=x",
            "redis-sentinel://:x@a:1,b:2/svc/3",
        ):
            address = parse_redis_url(url)
            again = parse_redis_url(address.to_url(show_password=True))
            self.assertEqual(again, address)

    def test_password_is_masked(self):
        for url in (
            f"redis://:{SECRET}@h",
            f"unix:///tmp/s?password={SECRET.replace('&', '')}",
            f"redis-sentinel://:{SECRET}@h/svc",
        ):
            address = parse_redis_url(url)
            self.assertNotIn("pa:ss", repr(address))
            self.assertNotIn("pa:ss", str(address))
            self.assertNotIn("pa%3Ass", str(address))

    def test_refusals(self):
        for url, reason in [
            ("http://h", "starts with"),
            ("h:6379", "starts with"),
            ("redis://", "host"),
            ("redis://h:0", "port"),
            ("redis://h:65536", "port"),
            ("redis://h:x", "port"),
            ("redis://h/x", "database"),
            ("redis://h/1/2", "after the database"),
            ("redis://a,b", "redis-sentinel"),
            ("redis://h?nope=1", "option"),
            ("redis://[::1", "host"),
            ("redis-sentinel://h", "service_name"),
            ("redis-sentinel://h:1,:2/svc", "host"),
            ("unix://", "socket path"),
            ("unix:///", "socket path"),
            ("unix:///s?db=x", "database"),
            ("redis://h" + "x" * 5000, "at most"),
        ]:
            error = self.assertRaises(ValueError, parse_redis_url, url)
            self.assertIn(reason, str(error), url)

    def test_errors_never_show_the_password(self):
        for url in (f"redis://:{SECRET}@h:bad", f"redis://:{SECRET}@/x"):
            error = self.assertRaises(ValueError, parse_redis_url, url)
            self.assertNotIn("pa:ss", str(error))


class ScriptedRedis:
    """Answers each command with the next scripted outcome (an exception is
    a failure); records what was sent."""

    def __init__(self, *outcomes):
        self.outcomes = list(outcomes)
        self.sent = []
        self.disconnected = False

    def execute_command(self, *arguments):
        self.sent.append(arguments)
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            return defer.fail(outcome)
        return defer.succeed(outcome)

    def get(self, key):
        return self.execute_command("GET", key)

    def disconnect(self):
        self.disconnected = True
        return defer.succeed(None)


LOST = txredisapi.ConnectionError("Lost connection")


class RetryingReadsTests(SynchronousTestCase):
    """Reads are sent again while Redis is away; writes never are."""

    def setUp(self):
        self.clock = task.Clock()

    def reads(self, *outcomes, patience=2.0):
        redis = ScriptedRedis(*outcomes)
        return redis, RetryingReads(redis, self.clock, patience=patience)

    def test_transient_failures(self):
        self.assertTrue(is_transient(LOST))
        self.assertTrue(is_transient(txredisapi.TimeoutError("no reply")))
        self.assertTrue(is_transient(txredisapi.ResponseError("LOADING Redis is")))
        self.assertTrue(is_transient(defer.TimeoutError()))
        self.assertFalse(is_transient(txredisapi.ResponseError("WRONGTYPE x")))
        self.assertFalse(is_transient(ValueError("bad")))

    def test_a_read_is_sent_again_until_answered(self):
        redis, reads = self.reads(LOST, txredisapi.ResponseError("LOADING"), "v")
        reply = reads.execute_command("HGETALL", "k")
        self.assertNoResult(reply)
        self.clock.pump([0.05, 0.1])
        self.assertEqual(self.successResultOf(reply), "v")
        self.assertEqual(len(redis.sent), 3)

    def test_method_reads_are_retried_too(self):
        redis, reads = self.reads(LOST, "v")
        reply = reads.get("k")
        self.clock.advance(0.05)
        self.assertEqual(self.successResultOf(reply), "v")

    def test_a_write_is_never_sent_again(self):
        redis, reads = self.reads(LOST)
        self.failureResultOf(
            reads.execute_command("SET", "k", "v"), txredisapi.ConnectionError
        )
        self.assertEqual(len(redis.sent), 1)

    def test_a_real_error_is_not_retried(self):
        redis, reads = self.reads(txredisapi.ResponseError("WRONGTYPE"))
        self.failureResultOf(
            reads.execute_command("GET", "k"), txredisapi.ResponseError
        )
        self.assertEqual(len(redis.sent), 1)

    def test_gives_up_after_its_patience_with_the_last_error(self):
        redis, reads = self.reads(*[LOST] * 100, patience=1.0)
        reply = reads.execute_command("GET", "k")
        self.clock.pump([0.05] * 40)
        self.failureResultOf(reply, txredisapi.ConnectionError)
        self.assertLess(len(redis.sent), 100)

    def test_disconnect_ends_waiting_retries(self):
        redis, reads = self.reads(LOST, "never")
        reply = reads.execute_command("GET", "k")
        self.successResultOf(reads.disconnect())
        self.failureResultOf(reply, txredisapi.ConnectionError)
        self.assertTrue(redis.disconnected)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class ConnectMemoryTests(TestCase):
    """connect_redis dials the address it is given, on the reactor it is given."""

    def test_tcp_endpoint(self):
        reactor = MemoryReactorClock()
        connection = connect_redis("redis://127.0.0.1:16379/2", reactor)
        self.addCleanup(connection.disconnect)
        self.assertEqual(
            [(host, port) for host, port, *_ in reactor.tcpClients],
            [("127.0.0.1", 16379)],
        )
        factory = connection._factory
        self.assertEqual(factory.dbid, 2)
        self.assertFalse(factory.convertNumbers)

    def test_reconnects_within_a_second(self):
        reactor = MemoryReactorClock()
        connection = connect_redis("redis://127.0.0.1:16379", reactor)
        self.addCleanup(connection.disconnect)
        factory = connection._factory
        # txredisapi draws each delay around these, with some jitter.
        self.assertEqual((factory.initialDelay, factory.maxDelay), (0.1, 1.0))

    def test_unix_endpoint(self):
        reactor = MemoryReactorClock()
        connection = connect_redis(parse_redis_url("unix:///tmp/x.sock"), reactor)
        self.addCleanup(connection.disconnect)
        self.assertEqual([path for path, *_ in reactor.unixClients], ["/tmp/x.sock"])


class ConnectRealRedisTests(TestCase):
    """A round trip through a private redis-server on 127.0.0.1."""

    @defer.inlineCallbacks
    def test_set_get_and_text_stays_text(self):
        server, _ = yield start_redis(self, persistent=False)
        connection = connect_redis(f"redis://127.0.0.1:{server.port}/1")
        self.addCleanup(connection.disconnect)

        yield connection.set("channel-info:1", "007")
        value = yield connection.get("channel-info:1")
        self.assertEqual(value, "007")
        count = yield connection.incr("counter")
        self.assertEqual(count, 1)

        # The write went to database 1, not 0.
        selected = yield connection.execute_command("CLIENT", "INFO")
        self.assertIn("db=1", selected)


class _Sentinel(protocol.ProcessProtocol):
    """A redis-server --sentinel child; `ended` fires when it exits."""

    def __init__(self):
        self.ended = defer.Deferred()

    def processEnded(self, reason):
        self.ended.callback(None)


class ConnectSentinelTests(TestCase):
    """A round trip through a real Sentinel to its master, all on 127.0.0.1."""

    @defer.inlineCallbacks
    def start_sentinel(self, master_port: int) -> defer.Deferred:
        """Spawn a sentinel monitoring 127.0.0.1:master_port as "mymaster";
        fires with its port once it names the master."""
        directory = self.mktemp()
        os.makedirs(directory)
        port = free_port()
        config_path = os.path.join(directory, "sentinel.conf")
        with open(config_path, "w") as config:
            config.write(
                f"port {port}\nbind 127.0.0.1\ndir {os.path.abspath(directory)}\n"
                f"sentinel monitor mymaster 127.0.0.1 {master_port} 1\n"
            )

        child = _Sentinel()
        executable = shutil.which("redis-server")
        transport = reactor.spawnProcess(
            child, executable, [executable, config_path, "--sentinel"], env={}
        )

        def stop():
            if child.ended.called:
                return None
            transport.signalProcess("TERM")
            return child.ended

        self.addCleanup(stop)

        # Bounded: at most 100 probes 0.05 s apart.
        for _ in range(100):
            try:
                probe = yield txredisapi.Connection(
                    "127.0.0.1", port, reconnect=False, connectTimeout=1
                )
            except Exception:
                yield task.deferLater(reactor, 0.05, lambda: None)
                continue
            try:
                master = yield probe.execute_command(
                    "SENTINEL", "get-master-addr-by-name", "mymaster"
                )
            finally:
                yield probe.disconnect()
            if master:
                return port
            yield task.deferLater(reactor, 0.05, lambda: None)
        self.fail("redis-server --sentinel did not start")

    @defer.inlineCallbacks
    def test_master_through_sentinel(self):
        server, _ = yield start_redis(self, persistent=False)
        sentinel_port = yield self.start_sentinel(server.port)

        connection = connect_redis(
            f"redis-sentinel://127.0.0.1:{sentinel_port}/mymaster/2"
        )
        self.addCleanup(connection.disconnect)
        yield connection.set("k", "0042")
        value = yield connection.get("k")
        self.assertEqual(value, "0042")

        # The master connection is ours: Nagle off, encoding in C.
        master = yield connection._factory.getConnection(peek=True)
        self.assertIsInstance(master, FastSentinelProtocol)
        no_delay = master.transport.getHandle().getsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY
        )
        self.assertTrue(no_delay)
        info = yield connection.execute_command("CLIENT", "INFO")
        self.assertIn("laddr=127.0.0.1:", info)
        self.assertIn("db=2", info)
