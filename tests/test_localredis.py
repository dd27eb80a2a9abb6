# Tests for cmppsvc.localredis: a private redis-server started and stopped.
import os
import signal
import socket

from twisted.internet import defer
from twisted.logger import globalLogPublisher
from twisted.trial import unittest

from cmppsvc.localredis import LocalRedis, RedisServerFailed, RedisServerMissing
from tests.redisserver import open_connection, start_redis


def capture_log(testcase) -> list[dict]:
    """Every log event emitted until the end of `testcase`."""
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    testcase.addCleanup(globalLogPublisher.removeObserver, events.append)
    return events


def formats(events: list[dict]) -> list[str]:
    """The format strings of `events`, to look for one kind of line."""
    return [event.get("log_format") or "" for event in events]


class LocalRedisTests(unittest.TestCase):
    """A real redis-server child process."""

    @defer.inlineCallbacks
    def test_start_answers_and_stop_ends(self):
        server, redis = yield start_redis(self)
        self.assertTrue(server.url.startswith("redis://127.0.0.1:"))
        yield redis.execute_command("SET", "a", "007")
        value = yield redis.execute_command("GET", "a")
        self.assertEqual(value, "007")

        yield server.stop()
        self.assertFalse(server.running)

    @defer.inlineCallbacks
    def test_a_port_in_use_is_refused_not_shared(self):
        """Another server on the port is never taken for our own."""
        server, _redis = yield start_redis(self)
        second = LocalRedis(None, port=server.port)
        error = yield self.assertFailure(second.start(), RedisServerFailed)
        self.assertIn(f"port {server.port}", str(error))
        self.assertIn("already in use", str(error))

    @defer.inlineCallbacks
    def test_restart_keeps_data_even_after_a_crash(self):
        server, redis = yield start_redis(self)
        yield redis.execute_command("SET", "kept", "1")
        # appendfsync everysec: make the write durable before the crash
        yield redis.execute_command("BGREWRITEAOF")
        yield _wait_for_rewrite(redis)

        yield server.restart(crash=True)
        again = open_connection(self, server)
        value = yield again.execute_command("GET", "kept")
        self.assertEqual(value, "1")

    @defer.inlineCallbacks
    def test_no_stopped_line_for_a_server_never_started(self):
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            server = LocalRedis(None, port=taken.getsockname()[1])
            yield self.assertFailure(server.start(), RedisServerFailed)
            events = capture_log(self)
            yield server.stop()
        self.assertFalse(any("stopped" in line for line in formats(events)))

    @defer.inlineCallbacks
    def test_start_logs_no_connection_retries(self):
        """Readiness is probed without a Redis client's retry lines."""
        events = capture_log(self)
        yield start_redis(self)
        self.assertFalse(any("retry" in line for line in formats(events)))

    @defer.inlineCallbacks
    def test_a_killed_server_is_restarted_with_its_data(self):
        server, redis = yield start_redis(self)
        yield redis.execute_command("SET", "kept", "1")
        yield redis.execute_command("BGREWRITEAOF")
        yield _wait_for_rewrite(redis)
        events = capture_log(self)
        first_pid = server.pid

        restarted = server.when_restarted()
        os.kill(first_pid, signal.SIGKILL)
        yield restarted

        self.assertNotEqual(server.pid, first_pid)
        value = yield redis.execute_command("GET", "kept")
        self.assertEqual(value, "1")
        (exit_event,) = [e for e in events if "exited" in (e.get("log_format") or "")]
        self.assertEqual(exit_event["signal"], signal.SIGKILL)
        self.assertEqual(exit_event["port"], server.port)

    @defer.inlineCallbacks
    def test_a_port_taken_meanwhile_ends_the_restarts(self):
        server = LocalRedis(None, restart_delay=lambda attempt: 0.2)
        yield server.start()
        self.addCleanup(server.stop)
        lost = defer.Deferred()
        server.on_port_taken = lambda: lost.callback(True)
        process = server._process
        os.kill(server.pid, signal.SIGKILL)
        yield process.ended

        with socket.socket() as taken:
            taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            taken.bind(("127.0.0.1", server.port))
            taken.listen()
            events = capture_log(self)
            yield lost

        self.assertFalse(server.running)
        self.assertEqual(
            len([line for line in formats(events) if "not restarting" in line]), 1
        )

    @defer.inlineCallbacks
    def test_stop_ends_a_waiting_restart(self):
        server = LocalRedis(None, restart_delay=lambda attempt: 3600.0)
        yield server.start()
        process = server._process
        os.kill(server.pid, signal.SIGKILL)
        yield process.ended
        events = capture_log(self)

        yield server.stop()

        self.assertFalse(server.running)
        self.assertFalse(any("stopped" in line for line in formats(events)))

    @defer.inlineCallbacks
    def test_kill_is_not_followed_by_a_restart(self):
        server = LocalRedis(None, restart_delay=lambda attempt: 0.0)
        self.addCleanup(server.stop)
        yield server.start()
        events = capture_log(self)

        yield server.kill()

        self.assertFalse(server.running)
        self.assertFalse(any("restart" in line for line in formats(events)))

    def test_missing_executable_is_a_clear_error(self):
        server = LocalRedis(None, executable="no-such-redis-server")
        failure = self.failureResultOf(server.start(), RedisServerMissing)
        self.assertIn("install Debian's redis-server", str(failure.value))


@defer.inlineCallbacks
def _wait_for_rewrite(redis):
    from twisted.internet import reactor, task

    for _ in range(100):
        info = yield redis.execute_command("INFO", "persistence")
        if "aof_rewrite_in_progress:0" in info and "aof_rewrite_scheduled:0" in info:
            return
        yield task.deferLater(reactor, 0.02, lambda: None)
