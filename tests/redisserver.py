# Shared helper: a real, private redis-server for trial tests.
"""Start a private redis-server for one test and clean it up afterwards.

Usage in a ``twisted.trial.unittest.TestCase``::

    @defer.inlineCallbacks
    def test_something(self):
        server, redis = yield start_redis(self)
        yield redis.set("a", "1")

The server listens on a free port of 127.0.0.1, keeps its data in a temporary
directory (append-only file, so ``server.restart()`` keeps the data and
``server.restart(crash=True)`` simulates a crash), and is stopped, with the
connection closed, when the test ends. Tests are skipped when redis-server is
not installed.
"""

import shutil

from twisted.internet import defer
from twisted.trial.unittest import SkipTest

from cmppsvc.localredis import LocalRedis
from cmppsvc.redisconn import connect_redis

#: Reconnect delays of test connections: short, so a restarted server is
#: found again within a fraction of a second.
RECONNECT_INITIAL_DELAY = 0.05
RECONNECT_MAX_DELAY = 0.2


def fast_reconnect(connection):
    """Make a txredisapi connection reconnect quickly (tests restart Redis)."""
    factory = connection._factory
    factory.initialDelay = RECONNECT_INITIAL_DELAY
    factory.maxDelay = RECONNECT_MAX_DELAY
    factory.jitter = 0
    return connection


def open_connection(testcase, server: LocalRedis):
    """A lazy, quickly reconnecting connection to ``server``, closed at cleanup."""
    connection = fast_reconnect(connect_redis(server.url))
    testcase.addCleanup(connection.disconnect)
    return connection


@defer.inlineCallbacks
def start_redis(testcase, persistent: bool = True):
    """Start a redis-server for ``testcase``; fires with (server, connection)."""
    if shutil.which("redis-server") is None:
        raise SkipTest("redis-server is not installed")

    directory = testcase.mktemp() if persistent else None
    server = LocalRedis(directory)
    yield server.start()
    testcase.addCleanup(server.stop)

    connection = open_connection(testcase, server)
    yield connection.ping()
    return server, connection
