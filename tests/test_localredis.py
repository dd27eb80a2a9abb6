# Tests for cmppsvc.localredis: a private redis-server started and stopped.
from twisted.internet import defer
from twisted.trial import unittest

from cmppsvc.localredis import LocalRedis, RedisServerFailed, RedisServerMissing
from tests.redisserver import open_connection, start_redis


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
