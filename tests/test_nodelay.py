"""TCP_NODELAY on every connection: the CMPP client, the simulator, Redis.

Nagle's algorithm held a small write (a SUBMIT, a Redis command) until the
peer acknowledged the previous one; these tests check that each protocol
turns it off when it connects, on in-memory transports, and once on a real
socket to a private redis-server.
"""

from __future__ import annotations

import socket

from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from cmppsvc.nodelay import disable_nagle
from cmppsvc.protocol import CMPPClientProtocol
from cmppsvc.redisconn import connect_redis
from cmppsvc.simulator.factory import SimulatorFactory
from tests.redisserver import start_redis
from tests.test_protocol_support import RecordingOwner, make_settings


class TCPTransport(StringTransport):
    """A StringTransport that records ``setTcpNoDelay`` like a TCP one."""

    def __init__(self) -> None:
        super().__init__()
        self.no_delay: list[bool] = []

    def setTcpNoDelay(self, enabled: bool) -> None:  # noqa: N802 (Twisted's name)
        self.no_delay.append(enabled)


class DisableNagleTests(SynchronousTestCase):
    def test_tcp_transport(self):
        transport = TCPTransport()
        disable_nagle(transport)
        self.assertEqual(transport.no_delay, [True])

    def test_transport_without_tcp_options_is_left_alone(self):
        # UNIX sockets and test transports have no setTcpNoDelay.
        disable_nagle(StringTransport())


class ProtocolsDisableNagleTests(SynchronousTestCase):
    def test_cmpp_client(self):
        protocol = CMPPClientProtocol(make_settings(), Clock(), RecordingOwner())
        transport = TCPTransport()
        protocol.makeConnection(transport)
        self.assertEqual(transport.no_delay, [True])
        protocol.connectionLost(Failure(ConnectionDone()))

    def test_simulator(self):
        factory = SimulatorFactory({"901234": "secret"}, Clock())
        protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        transport = TCPTransport()
        protocol.makeConnection(transport)
        self.assertEqual(transport.no_delay, [True])

    def test_redis_connection(self):
        connection = connect_redis("redis://127.0.0.1:16379", MemoryReactorClock())
        self.addCleanup(connection.disconnect)
        protocol = connection._factory.buildProtocol(None)
        transport = TCPTransport()
        protocol.makeConnection(transport)
        self.assertEqual(transport.no_delay, [True])


class RealRedisSocketTests(TestCase):
    @defer.inlineCallbacks
    def test_socket_has_nodelay(self):
        server, _ = yield start_redis(self, persistent=False)
        connection = connect_redis(server.url)
        self.addCleanup(connection.disconnect)
        yield connection.ping()
        protocol = yield connection._factory.getConnection(peek=True)
        sock = protocol.transport.getHandle()
        self.assertTrue(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
