# test-case-name: tests.test_protocol
"""In-memory fakes for the connection tests: a scripted gateway, an owner, an endpoint.

Nothing here opens a socket: transports are ``StringTransport``s whose close is
delivered one clock tick later, as a reactor would.
"""

from __future__ import annotations

from twisted.internet.defer import fail, succeed
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from zope.interface import implementer

from cmppsvc.codec import ConnectResp, FrameBuffer, Submit, decode, encode
from cmppsvc.codec.auth import authenticator_ismg
from cmppsvc.settings import ConnectionSettings

PASSWORD = "pw-never-shown-42"

START = 1_733_300_000.0


def make_settings(**changes: object) -> ConnectionSettings:
    """Settings for a loopback test gateway, with ``changes`` applied."""
    values: dict = {
        "channel_id": "chan1",
        "account": "901234",
        "password": PASSWORD,
        "host": "127.0.0.1",
        "port": 7890,
        "version": 0x20,
    }
    values.update(changes)
    return ConnectionSettings(**values)


def make_submit(text: bytes = b"hello") -> Submit:
    """A small SUBMIT to one number."""
    return Submit(
        msg_src="901234",
        src_id="10690001",
        dest_terminal_ids=("13800138000",),
        msg_fmt=15,
        msg_content=text,
    )


class Sequence:
    """Sequence_Ids 1, 2, 3, ..."""

    def __init__(self) -> None:
        self.last = 0

    def __call__(self) -> int:
        self.last += 1
        return self.last


class ClosingTransport(StringTransport):
    """A StringTransport whose close reaches the protocol on the next clock tick."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock
        self.protocol_to_notify = None
        self._closing = False

    def _close(self) -> None:
        if not self._closing and self.protocol_to_notify is not None:
            self._closing = True
            self.clock.callLater(
                0, self.protocol_to_notify.connectionLost, Failure(ConnectionDone())
            )

    def loseConnection(self) -> None:
        super().loseConnection()
        self._close()

    def abortConnection(self) -> None:
        self.aborted = True
        super().abortConnection()


class Gateway:
    """The far side of one in-memory connection: reads what we sent, answers."""

    def __init__(self, wire, clock: Clock, version: int = 0x20) -> None:
        self.wire = wire
        self.clock = clock
        self.version = version
        self.transport = ClosingTransport(clock)
        self.transport.protocol_to_notify = wire
        self._frames = FrameBuffer()
        self.connect = None
        wire.makeConnection(self.transport)

    def received(self) -> list:
        """Every PDU written since the last call, decoded."""
        data = self.transport.value()
        self.transport.clear()
        return [decode(frame, self.version) for frame in self._frames.feed(data)]

    def send(self, *pdus: object) -> None:
        """Deliver ``pdus`` to the client in one read."""
        self.wire.dataReceived(b"".join(encode(pdu, self.version) for pdu in pdus))

    def login(self, status: int = 0) -> None:
        """Answer the client's CONNECT with ``status``."""
        (connect,) = self.received()
        self.connect = connect
        authenticator = authenticator_ismg(
            status, connect.authenticator_source, PASSWORD, 1
        )
        self.send(
            ConnectResp(
                status=status,
                authenticator_ismg=authenticator,
                version=self.version,
                seq=connect.seq,
            )
        )

    def drop(self) -> None:
        """The TCP connection dies under the client."""
        self.wire.connectionLost(Failure(ConnectionDone()))

    @property
    def closed(self) -> bool:
        """Whether the client closed or aborted the connection."""
        return self.transport.disconnecting or self.transport.disconnected


@implementer(IStreamClientEndpoint)
class FakeEndpoint:
    """Connects in memory; ``refuse`` makes the next attempts fail like TCP RST."""

    def __init__(self, clock: Clock, version: int = 0x20) -> None:
        self.clock = clock
        self.version = version
        self.refuse = 0
        self.attempts: list[float] = []
        self.gateways: list[Gateway] = []

    def connect(self, factory):
        self.attempts.append(self.clock.seconds())
        if self.refuse:
            self.refuse -= 1
            return fail(ConnectionRefusedError())
        wire = factory.buildProtocol(None)
        self.gateways.append(Gateway(wire, self.clock, self.version))
        return succeed(wire)

    @property
    def gateway(self) -> Gateway:
        """The latest connection."""
        return self.gateways[-1]


class RecordingOwner:
    """A ConnectionOwner that remembers every call, for protocol-level tests."""

    def __init__(self) -> None:
        self.next_seq = Sequence()
        self.states: list[str] = []
        self.failures: list[tuple] = []
        self.opened = 0
        self.flow_controlled_records: list = []
        self.late: list = []
        self.delivered: list = []
        self.lost: list | None = None

    def connection_state_changed(self, protocol, state) -> None:
        self.states.append(state)

    def connection_failed(self, protocol, kind, code, reason) -> None:
        self.failures.append((kind, code, reason))

    def window_opened(self, protocol) -> None:
        self.opened += 1

    def flow_controlled(self, protocol, record) -> None:
        self.flow_controlled_records.append(record)

    def late_response(self, seq, response) -> None:
        self.late.append((seq, response))

    def deliver_received(self, pdu) -> None:
        self.delivered.append(pdu)

    def connection_lost(self, protocol, outstanding) -> None:
        self.lost = outstanding
