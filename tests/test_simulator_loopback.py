# test-case-name: tests.test_simulator_loopback
"""The simulator over real TCP on 127.0.0.1 (bounded: small counts, a timeout)."""

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import TestCase

from cmppsvc.codec import (
    VERSION_30,
    Connect,
    ConnectResp,
    Deliver,
    DeliverResp,
    FrameBuffer,
    Submit,
    SubmitResp,
    Terminate,
    decode,
    encode,
)
from cmppsvc.codec.auth import authenticator_source
from cmppsvc.simulator import Behaviour, SimulatorFactory
from cmppsvc.simulator.tap import SimulatorService

ACCOUNT = "100002"
PASSWORD = "secret"
COUNT = 200


class RawClient(Protocol):
    """A minimal SP: logs in, pipelines SUBMITs, answers reports, terminates."""

    def __init__(self) -> None:
        self.frames = FrameBuffer()
        self.responses: list[SubmitResp] = []
        self.reports: list[Deliver] = []
        self.logged_in: Deferred = Deferred()
        self.all_reports: Deferred = Deferred()
        self.closed: Deferred = Deferred()

    def connectionMade(self) -> None:
        connect = Connect(
            source_addr=ACCOUNT,
            authenticator_source=authenticator_source(ACCOUNT, PASSWORD, 1203153045),
            version=VERSION_30,
            timestamp=1203153045,
            seq=1,
        )
        self.transport.write(encode(connect, VERSION_30))

    def dataReceived(self, data: bytes) -> None:
        answers = []
        for frame in self.frames.feed(data):
            pdu = decode(frame, VERSION_30)
            if isinstance(pdu, ConnectResp):
                self.logged_in.callback(pdu)
            elif isinstance(pdu, SubmitResp):
                self.responses.append(pdu)
            elif isinstance(pdu, Deliver):
                self.reports.append(pdu)
                answers.append(DeliverResp(msg_id=pdu.msg_id, result=0, seq=pdu.seq))
        if answers:
            self.transport.write(b"".join(encode(a, VERSION_30) for a in answers))
        if len(self.reports) == COUNT and not self.all_reports.called:
            self.all_reports.callback(None)

    def connectionLost(self, reason: object) -> None:
        self.closed.callback(None)


class LoopbackTests(TestCase):
    """Login, pipelined submits with reports, TERMINATE, over 127.0.0.1."""

    timeout = 20

    @inlineCallbacks
    def test_round_trip(self):
        simulator = SimulatorFactory(
            {ACCOUNT: PASSWORD}, reactor, Behaviour(report_delay=0.01)
        )
        port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            simulator
        )
        self.addCleanup(port.stopListening)

        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port)
        client = yield endpoint.connect(Factory.forProtocol(RawClient))
        response = yield client.logged_in
        self.assertEqual(response.status, 0)

        submits = [
            Submit(dest_terminal_ids=(f"138{index:08d}",), seq=index + 2)
            for index in range(COUNT)
        ]
        client.transport.write(b"".join(encode(s, VERSION_30) for s in submits))
        yield client.all_reports
        yield simulator.wait_for_submits(COUNT, ACCOUNT)

        self.assertEqual(len({r.msg_id for r in client.responses}), COUNT)
        self.assertEqual(
            {r.report.msg_id for r in client.reports},
            {r.msg_id for r in client.responses},
        )

        client.transport.write(encode(Terminate(seq=COUNT + 2), VERSION_30))
        yield client.closed
        counters = simulator.counters(ACCOUNT)
        self.assertEqual((counters.submits, counters.reports_sent), (COUNT, COUNT))
        self.assertEqual(counters.terminates_received, 1)

    @inlineCallbacks
    def test_service_writes_port_file(self):
        port_file = self.mktemp()
        simulator = SimulatorFactory({ACCOUNT: PASSWORD}, reactor)
        service = SimulatorService(
            reactor, "tcp:0:interface=127.0.0.1", simulator, port_file
        )
        service.startService()
        self.addCleanup(service.stopService)
        yield _turn()
        self.assertIsNotNone(service.port)
        with open(port_file) as opened:
            self.assertEqual(int(opened.read()), service.port.getHost().port)
        self.assertEqual(service.port.getHost().host, "127.0.0.1")


def _turn() -> Deferred:
    """Let the reactor run one iteration."""
    waiter: Deferred = Deferred()
    reactor.callLater(0, waiter.callback, None)
    return waiter
