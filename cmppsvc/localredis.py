# -*- test-case-name: tests.test_localredis -*-
"""A private redis-server child process.

``LocalRedis`` runs one redis-server bound to 127.0.0.1 for the demo, for tests
and for a single-box install; ``LocalRedisService`` wraps it for twistd.
Connect to it with ``cmppsvc.redisconn.connect_redis(local_redis.url)``.
"""

import collections
import os
import shutil
import socket
import tempfile
from typing import Any

import txredisapi
from twisted.application.service import Service
from twisted.internet import defer, protocol, task
from twisted.internet.error import ProcessExitedAlready
from twisted.logger import Logger

#: How many times readiness is probed, and the pause between probes (seconds).
READY_ATTEMPTS = 100
READY_INTERVAL = 0.05

#: Output lines of redis-server kept to explain a failed start.
OUTPUT_LINES = 20

#: While waiting for the server to exit, how often to look for it (seconds).
#: Twisted reaps a child on SIGCHLD, but a reactor run without signal handlers
#: (embedded, or a benchmark) only tries once, when the pipes close, and may be early.
REAP_INTERVAL = 0.05


class RedisServerMissing(RuntimeError):  # noqa: N818 (reads as a state)
    """redis-server is not installed (or not at the path given)."""

    def __init__(self, executable: str):
        super().__init__(
            f"redis-server not found ({executable!r}): install Debian's "
            "redis-server package or pass --redis URL"
        )


class RedisServerFailed(RuntimeError):  # noqa: N818
    """redis-server exited or never answered while starting."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _ServerProcess(protocol.ProcessProtocol):
    """Collects redis-server's last output lines and reports its exit."""

    def __init__(self):
        self.output = collections.deque(maxlen=OUTPUT_LINES)
        self.ended = defer.Deferred()
        self.exited = False

    def outReceived(self, data: bytes):
        for line in data.decode("utf-8", "replace").splitlines():
            self.output.append(line)

    errReceived = outReceived

    def processEnded(self, reason):
        self.exited = True
        self.ended.callback(None)


def port_is_free(port: int) -> bool:
    """True when nothing listens on 127.0.0.1:`port` (so our server can)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # As redis-server binds: connections of an earlier server still in
    # TIME_WAIT do not count, a listening socket does.
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind(("127.0.0.1", port))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def _process_id(info: Any) -> int | None:
    """The `process_id` of an INFO reply: which server answered."""
    if isinstance(info, bytes):
        info = info.decode("ascii", "replace")
    for line in str(info).splitlines():
        if line.startswith("process_id:"):
            return int(line.split(":", 1)[1])
    return None


class LocalRedis:
    """One redis-server child on 127.0.0.1, started and stopped on demand.

    Without ``directory`` the server keeps nothing on disk and works in a
    temporary directory removed on stop; with one, it appends every write to an
    append-only file there, so data survives a restart (and a kill).
    """

    log = Logger()

    def __init__(
        self,
        directory: str | None,
        port: int = 0,
        executable: str = "redis-server",
        reactor=None,
    ):
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.directory = None if directory is None else os.path.abspath(directory)
        self.port = port or free_port()
        self.executable = executable
        self._process = None
        self._workdir = None

    @property
    def url(self) -> str:
        """The server's address as a redis:// URL."""
        return f"redis://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """True while the child process is alive."""
        return self._process is not None and not self._process.exited

    def _arguments(self) -> list[str]:
        persistent = self.directory is not None
        return [
            self._path,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            self._workdir,
            "--save",
            "",
            "--appendonly",
            "yes" if persistent else "no",
            "--appendfsync",
            "everysec",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--loglevel",
            "warning",
        ]

    def start(self) -> defer.Deferred:
        """Spawn redis-server; the Deferred fires with self once it answers."""
        path = shutil.which(self.executable)
        if path is None:
            return defer.fail(RedisServerMissing(self.executable))
        self._path = path

        if self.directory is not None:
            os.makedirs(self.directory, exist_ok=True)
            self._workdir = self.directory
        elif self._workdir is None:
            self._workdir = tempfile.mkdtemp(prefix="cmppsvc-redis-")

        if not port_is_free(self.port):
            return defer.fail(
                RedisServerFailed(
                    f"port {self.port} on 127.0.0.1 is already in use: choose "
                    "another --redis-port, or pass --redis URL to use that server"
                )
            )

        # In a session of its own, a Ctrl-C meant for cmppsvc does not reach the
        # server: cmppsvc still needs it to flush its writes while stopping.
        executable, arguments = path, self._arguments()
        setsid = shutil.which("setsid")
        if setsid is not None:
            executable, arguments = setsid, ["setsid", *arguments]

        self._process = _ServerProcess()
        self.reactor.spawnProcess(
            self._process,
            executable,
            arguments,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            path=self._workdir,
        )
        self.log.info("redis-server starting port={port}", port=self.port)
        return self._wait_ready()

    @defer.inlineCallbacks
    def _wait_ready(self):
        process = self._process
        for _attempt in range(READY_ATTEMPTS):
            if process.exited:
                break
            try:
                connection = yield txredisapi.Connection(
                    "127.0.0.1", self.port, reconnect=False, connectTimeout=1
                )
            except Exception:
                yield task.deferLater(self.reactor, READY_INTERVAL, lambda: None)
                continue
            try:
                info = yield connection.execute_command("INFO", "server")
                if _process_id(info) != process.transport.pid:
                    # Another server answers on our port: never use it.
                    break
                yield connection.ping()
            except txredisapi.ResponseError:
                # LOADING: up, still reading its append-only file
                yield task.deferLater(self.reactor, READY_INTERVAL, lambda: None)
                continue
            finally:
                yield connection.disconnect()
            return self

        output = " | ".join(process.output) or "no output"
        if not process.exited:
            yield self._signal_and_wait("KILL")
        raise RedisServerFailed(
            f"redis-server on port {self.port} did not become ready: {output}"
        )

    def _signal_and_wait(self, signal_name: str) -> defer.Deferred:
        process = self._process
        if process is None or process.exited:
            return defer.succeed(None)
        try:
            process.transport.signalProcess(signal_name)
        except ProcessExitedAlready:
            pass
        ended = defer.Deferred()
        process.ended.addBoth(lambda result: ended.callback(None) or result)

        reaping = task.LoopingCall(process.transport.reapProcess)
        reaping.clock = self.reactor
        reaping.start(REAP_INTERVAL, now=False)
        ended.addBoth(lambda result: reaping.stop() or result)
        return ended

    def stop(self) -> defer.Deferred:
        """Terminate the server (SIGTERM: it flushes its append-only file) and
        wait for the exit; a temporary directory is removed afterwards."""
        d = self._signal_and_wait("TERM")

        def cleaned(_):
            if self.directory is None and self._workdir is not None:
                shutil.rmtree(self._workdir, ignore_errors=True)
                self._workdir = None
            self.log.info("redis-server stopped port={port}", port=self.port)

        return d.addCallback(cleaned)

    def kill(self) -> defer.Deferred:
        """Kill the server at once (SIGKILL), as a crash would; keeps its
        directory so ``start()``/``restart()`` can bring it back."""
        return self._signal_and_wait("KILL")

    @defer.inlineCallbacks
    def restart(self, crash: bool = False):
        """Stop (or, with ``crash``, kill) the server and start it again on the
        same port and directory; fires with self when it answers again."""
        if crash:
            yield self.kill()
        else:
            yield self._signal_and_wait("TERM")
        result = yield self.start()
        return result


class LocalRedisService(Service):
    """A ``LocalRedis`` as a twistd service: started and stopped with the app."""

    def __init__(self, local_redis: LocalRedis):
        self.local_redis = local_redis

    def startService(self):
        """Start the server; a failure to start is logged by the caller's
        Deferred handling, and ``ready`` fires when Redis answers."""
        Service.startService(self)
        self.ready = self.local_redis.start()
        return self.ready

    def stopService(self):
        """Stop the server and wait for its exit."""
        Service.stopService(self)
        return self.local_redis.stop()
