# -*- test-case-name: tests.test_localredis -*-
"""A private redis-server child process.

``LocalRedis`` runs one redis-server bound to 127.0.0.1 for the demo, for tests
and for a single-box install; ``LocalRedisService`` wraps it for twistd.
Connect to it with ``cmppsvc.redisconn.connect_redis(local_redis.url)``.

Once started, a server that exits on its own (a crash, a kill -9) is logged
with its last output lines and started again on the same port and directory,
after a delay growing from 0.5 s to 30 s (``RestartSchedule``), until
``stop()``. Its clients ride out the gap by reconnecting.
"""

from __future__ import annotations

import collections
import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from typing import Any

import txredisapi
from twisted.application.service import Service
from twisted.internet import defer, protocol, task
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.error import (
    ConnectError,
    ConnectingCancelledError,
    ProcessExitedAlready,
)
from twisted.logger import Logger

from cmppsvc.redisrestart import RESTART_DELAY, RestartSchedule

#: How many times readiness is probed, and the pause between probes (seconds).
READY_ATTEMPTS = 100
READY_INTERVAL = 0.05

#: While waiting for the server to exit, how often to send the signal again
#: (seconds), and how long a stop waits before it kills the server.
RESIGNAL_INTERVAL = 1.0
STOP_GRACE = 10.0

#: Output lines of redis-server kept to explain a failed start or an exit.
OUTPUT_LINES = 20
OUTPUT_CHARACTERS = 300

#: While waiting for the server to exit, how often to look for it (seconds).
#: Twisted reaps a child on SIGCHLD, but a reactor run without signal handlers
#: (embedded, or a benchmark) only tries once, when the pipes close, and may be early.
REAP_INTERVAL = 0.05


class RedisServerError(RuntimeError):
    """The private redis-server cannot run, for a cause the operator fixes."""


class RedisServerMissing(RedisServerError):  # noqa: N818 (reads as a state)
    """redis-server is not installed (or not at the path given)."""

    def __init__(self, executable: str):
        super().__init__(
            f"redis-server not found ({executable!r}): install Debian's "
            "redis-server package or pass --redis URL"
        )


class RedisServerFailed(RedisServerError):  # noqa: N818
    """redis-server exited or never answered while starting."""


class RedisPortTaken(RedisServerFailed):  # noqa: N818
    """Another program listens on the private server's port."""


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
        self.exit_code: int | None = None
        self.exit_signal: int | None = None

    def outReceived(self, data: bytes):
        for line in data.decode("utf-8", "replace").splitlines():
            self.output.append(line)

    errReceived = outReceived

    def processEnded(self, reason):
        self.exited = True
        self.exit_code = getattr(reason.value, "exitCode", None)
        self.exit_signal = getattr(reason.value, "signal", None)
        self.ended.callback(None)

    def last_output(self) -> str:
        """The last kept output lines on one line, for a log event (at most
        OUTPUT_CHARACTERS: redis-server's start-up banner is long)."""
        text = " | ".join(self.output) or "no output"
        if len(text) > OUTPUT_CHARACTERS:
            text = "..." + text[-OUTPUT_CHARACTERS:]
        return text


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


def _quiet_factory() -> protocol.Factory:
    """A factory for a bare TCP probe that writes nothing to the log."""
    factory = protocol.Factory.forProtocol(protocol.Protocol)
    factory.noisy = False
    return factory


class LocalRedis:
    """One redis-server child on 127.0.0.1, started and stopped on demand.

    Without ``directory`` the server keeps nothing on disk and works in a
    temporary directory removed on stop; with one, it appends every write to an
    append-only file there, so data survives a restart (and a kill).
    Between ``start()`` and ``stop()`` (or ``kill()``) an exit of the server
    that was not asked for is followed by a restart (see ``RestartSchedule``).
    """

    log = Logger()

    def __init__(
        self,
        directory: str | None,
        port: int = 0,
        executable: str = "redis-server",
        reactor=None,
        restart_delay: Callable[[int], float] = RESTART_DELAY,
    ):
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.directory = None if directory is None else os.path.abspath(directory)
        self.port = port or free_port()
        self.executable = executable
        self.restart_delay = restart_delay
        self._process = None
        self._workdir = None
        self._starting: defer.Deferred | None = None
        #: Called when a restart finds the port taken by another program.
        self.on_port_taken: Callable[[], object] | None = None
        self._stopping = False
        self._restarts: RestartSchedule | None = None
        self._restart_waiters: list[defer.Deferred] = []

    @property
    def url(self) -> str:
        """The server's address as a redis:// URL."""
        return f"redis://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """True while the child process is alive."""
        return self._process is not None and not self._process.exited

    @property
    def pid(self) -> int | None:
        """The process id of the server while it runs."""
        return self._process.transport.pid if self.running else None

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
        """Spawn redis-server; the Deferred fires with self once it answers,
        and from then on an exit not asked for is followed by a restart."""
        self._stop_restarting()
        self._stopping = False

        def answering(result):
            self._restarts = RestartSchedule(
                self._start_again, self.reactor, self.port, self.restart_delay
            )
            self._restarts.running()
            return result

        return self._launch().addCallback(answering)

    def when_restarted(self) -> defer.Deferred:
        """Fires with self the next time a server that exited on its own
        answers again after a restart."""
        waiter: defer.Deferred = defer.Deferred()
        self._restart_waiters.append(waiter)
        return waiter

    def _start_again(self) -> defer.Deferred:
        def answering(result):
            waiters, self._restart_waiters = self._restart_waiters, []
            for waiter in waiters:
                waiter.callback(self)
            return result

        def taken(failure):
            # Another program took the port while the server was down, and
            # the clients reconnect to whatever answers there: restarting
            # later would not make that server ours.
            failure.trap(RedisPortTaken)
            self._stop_restarting()
            self.log.error(
                "port {port} was taken by another program while redis-server "
                "was down: not restarting it",
                port=self.port,
            )
            if self.on_port_taken is not None:
                self.on_port_taken()
            return failure

        return self._launch().addCallbacks(answering, taken)

    def _launch(self) -> defer.Deferred:
        """Spawn the server and wait until it answers (no restart involved)."""
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
                RedisPortTaken(
                    f"port {self.port} on 127.0.0.1 is already in use by another "
                    "program: stop it, choose another --redis-port, or pass "
                    "--redis URL to use a Redis of your own"
                )
            )

        # In a session of its own, a Ctrl-C meant for cmppsvc does not reach the
        # server: cmppsvc still needs it to flush its writes while stopping.
        executable, arguments = path, self._arguments()
        setsid = shutil.which("setsid")
        if setsid is not None:
            executable, arguments = setsid, ["setsid", *arguments]

        process = self._process = _ServerProcess()
        self.reactor.spawnProcess(
            process,
            executable,
            arguments,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            path=self._workdir,
        )
        process.ended.addCallback(lambda _: self._process_ended(process))
        self.log.info("redis-server starting port={port}", port=self.port)

        starting = self._starting = self._wait_ready(process)

        def started(result):
            if self._starting is starting:
                self._starting = None
            return result

        return starting.addBoth(started)

    def _process_ended(self, process: _ServerProcess) -> None:
        """An exit while the server should run: log it and restart it."""
        if process is not self._process or self._starting is not None:
            return  # a failed start says so itself
        if self._restarts is None:
            return  # stopped, killed or restarted on purpose
        self.log.warn(
            "redis-server exited port={port} exit_code={exit_code} "
            "signal={signal} output={output}",
            port=self.port,
            exit_code=process.exit_code,
            signal=process.exit_signal,
            output=process.last_output(),
        )
        self._restarts.exited()

    @defer.inlineCallbacks
    def _wait_ready(self, process: _ServerProcess):
        for _attempt in range(READY_ATTEMPTS):
            if process.exited or self._stopping:
                break
            answer = yield self._probe(process)
            if answer == "ours":
                return self
            if answer == "other":
                break  # another server answers on our port: never use it
            yield task.deferLater(self.reactor, READY_INTERVAL, lambda: None)

        if self._stopping:
            raise RedisServerFailed(f"redis-server on port {self.port} stopped")
        output = process.last_output()
        if not process.exited:
            yield self._signal_and_wait("KILL")
        raise RedisServerFailed(
            f"redis-server on port {self.port} did not become ready: {output}"
        )

    @defer.inlineCallbacks
    def _probe(self, process: _ServerProcess):
        """Who answers on the port: "ours", "other" (another server) or
        "not yet". A bare TCP connection first: until the port listens, a
        Redis client would log each refused attempt as a retry."""
        endpoint = TCP4ClientEndpoint(self.reactor, "127.0.0.1", self.port, timeout=1)
        try:
            bare = yield endpoint.connect(_quiet_factory())
        except ConnectingCancelledError:
            # The start was cancelled (a stop): say so as a cancellation.
            raise defer.CancelledError() from None
        except ConnectError:
            return "not yet"
        bare.transport.loseConnection()

        try:
            connection = yield txredisapi.Connection(
                "127.0.0.1", self.port, reconnect=False, connectTimeout=1
            )
        except (ConnectError, txredisapi.RedisError):
            return "not yet"
        try:
            info = yield connection.execute_command("INFO", "server")
            if _process_id(info) != process.transport.pid:
                return "other"
            yield connection.ping()
        except txredisapi.RedisError:
            return "not yet"  # LOADING: up, still reading its append-only file
        finally:
            yield connection.disconnect()
        return "ours"

    def _signal_and_wait(self, signal_name: str) -> defer.Deferred:
        """Send `signal_name` and wait for the exit. The signal is sent again
        every RESIGNAL_INTERVAL: one that reaches the child between fork and
        exec is taken by the Python handler it inherited, and lost. A server
        still there after STOP_GRACE seconds is killed."""
        process = self._process
        if process is None or process.exited:
            return defer.succeed(None)
        started = self.reactor.seconds()

        def send(name: str) -> None:
            try:
                process.transport.signalProcess(name)
            except ProcessExitedAlready:
                pass

        send(signal_name)
        signals_sent = 1
        killing = signal_name == "KILL"  # SIGKILL is never lost

        def look() -> None:
            nonlocal signals_sent, killing
            waited = self.reactor.seconds() - started
            if not killing and waited >= STOP_GRACE:
                killing = True
                self.log.warn(
                    "redis-server port={port} still running after {seconds} s: "
                    "killing it",
                    port=self.port,
                    seconds=STOP_GRACE,
                )
                send("KILL")
            elif not killing and waited >= RESIGNAL_INTERVAL * signals_sent:
                signals_sent += 1
                send(signal_name)
            process.transport.reapProcess()

        ended = defer.Deferred()
        process.ended.addBoth(lambda result: ended.callback(None) or result)

        looking = task.LoopingCall(look)
        looking.clock = self.reactor
        looking.start(REAP_INTERVAL, now=False)
        ended.addBoth(lambda result: looking.stop() or result)
        return ended

    def _stop_restarting(self) -> None:
        if self._restarts is not None:
            self._restarts.stop()
            self._restarts = None

    def _start_finished(self) -> defer.Deferred:
        """Fires (with None) once a start under way has succeeded or failed."""
        starting = self._starting
        if starting is None:
            return defer.succeed(None)
        finished: defer.Deferred = defer.Deferred()
        starting.addBoth(lambda result: finished.callback(None) or result)
        return finished

    @defer.inlineCallbacks
    def stop(self):
        """Terminate the server (SIGTERM: it flushes its append-only file) and
        wait for the exit; a temporary directory is removed afterwards.
        Restarts end here; a restart under way is broken off first."""
        self._stop_restarting()
        self._stopping = True
        yield self._start_finished()

        was_running = self.running
        yield self._signal_and_wait("TERM")
        if self.directory is None and self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        if was_running:
            self.log.info("redis-server stopped port={port}", port=self.port)

    def kill(self) -> defer.Deferred:
        """Kill the server at once (SIGKILL), as a crash would, and do not
        restart it; keeps its directory so ``start()``/``restart()`` can bring
        it back."""
        self._stop_restarting()
        return self._signal_and_wait("KILL")

    @defer.inlineCallbacks
    def restart(self, crash: bool = False):
        """Stop (or, with ``crash``, kill) the server and start it again on the
        same port and directory; fires with self when it answers again."""
        self._stop_restarting()
        if crash:
            yield self.kill()
        else:
            yield self._signal_and_wait("TERM")
        result = yield self.start()
        return result


class LocalRedisService(Service):
    """A ``LocalRedis`` as a twistd service: started and stopped with the app.

    ``ready`` (set by ``startService``) fires once the server first answers,
    or fails with ``RedisServerError``; start the server's clients from it.
    """

    def __init__(self, local_redis: LocalRedis):
        self.local_redis = local_redis
        self.ready: defer.Deferred | None = None

    def startService(self):
        """Start the server; ``ready`` tells when it answers."""
        Service.startService(self)
        self.ready = self.local_redis.start()

    def stopService(self):
        """Stop the server (and its restarts) and wait for its exit."""
        Service.stopService(self)
        return self.local_redis.stop()
