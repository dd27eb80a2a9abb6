# Shared helpers for the simulator tests (no test cases here).
"""An in-memory SP client driving one SimulatorProtocol, for the simulator tests."""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from cmppsvc.codec import (
    VERSION_20,
    Connect,
    ConnectResp,
    FrameBuffer,
    Submit,
    decode,
    encode,
)
from cmppsvc.codec.auth import authenticator_source
from cmppsvc.simulator import Behaviour, SimulatorFactory

# The login of reference vector V1.
ACCOUNT = "901234"
PASSWORD = "Secret#2024"
TIMESTAMP = 1203153045

# A clock reading away from the epoch, so Msg_Id time fields are not all zero.
START = 1_764_000_000.0


class Harness:
    """One SP connection to a fresh simulator, on a Clock and a StringTransport."""

    def __init__(
        self,
        version: int = VERSION_20,
        behaviour: Behaviour | None = None,
        accounts: dict[str, str] | None = None,
        **factory_arguments: object,
    ) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        factory_arguments.setdefault("record_submits", True)
        self.factory = SimulatorFactory(
            accounts if accounts is not None else {ACCOUNT: PASSWORD},
            self.clock,
            behaviour=behaviour,
            **factory_arguments,
        )
        self.version = version
        self.seq = 0
        self.connect()

    def connect(self) -> None:
        """Open a new connection (the previous one, if any, stays as it is)."""
        address = IPv4Address("TCP", "127.0.0.1", 40000)
        self.protocol = self.factory.buildProtocol(address)
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)
        self.frames = FrameBuffer()

    def next_seq(self) -> int:
        """The client's next Sequence_Id."""
        self.seq += 1
        return self.seq

    def send(self, *pdus: object) -> None:
        """Deliver ``pdus`` to the simulator in one read."""
        self.send_bytes(b"".join(encode(pdu, self.version) for pdu in pdus))

    def send_bytes(self, data: bytes) -> None:
        """Deliver raw bytes to the simulator in one read."""
        self.protocol.dataReceived(data)

    def received(self) -> list:
        """The PDUs the simulator wrote since the last call, decoded."""
        data = self.transport.value()
        self.transport.clear()
        return [decode(frame, self.version) for frame in self.frames.feed(data)]

    def login(
        self,
        password: str = PASSWORD,
        account: str = ACCOUNT,
        version: int | None = None,
    ) -> ConnectResp:
        """Send CONNECT and return the CONNECT_RESP."""
        self.send(self.connect_pdu(password, account, version))
        (response,) = self.received()
        return response

    def connect_pdu(
        self,
        password: str = PASSWORD,
        account: str = ACCOUNT,
        version: int | None = None,
    ) -> Connect:
        """A CONNECT with the next seq (not sent)."""
        return Connect(
            source_addr=account,
            authenticator_source=authenticator_source(account, password, TIMESTAMP),
            version=self.version if version is None else version,
            timestamp=TIMESTAMP,
            seq=self.next_seq(),
        )

    def submit(self, *destinations: str, **fields: object) -> Submit:
        """A SUBMIT with the next seq (not sent)."""
        fields.setdefault("src_id", "10658012")
        fields.setdefault("msg_src", ACCOUNT)
        fields.setdefault("service_id", "MXX0001")
        fields.setdefault("msg_content", "hello".encode("utf-16-be"))
        return Submit(
            dest_terminal_ids=destinations or ("13800138000",),
            seq=self.next_seq(),
            **fields,
        )

    @property
    def closing(self) -> bool:
        """Whether the simulator asked to close the connection."""
        return self.transport.disconnecting

    def lose(self) -> None:
        """Tell the simulator its connection ended."""
        self.protocol.connectionLost(Failure(ConnectionDone()))
