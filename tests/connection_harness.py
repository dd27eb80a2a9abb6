# test-case-name: tests.test_connection_integration
"""A ChannelConnector against the real simulator over 127.0.0.1, for integration tests.

Everything runs on the real reactor with short timers; every wait polls with a
generous deadline and nothing asserts on timing.  ``Ledger`` counts the outcomes of
each submitted message, so a test can show that every message ended exactly once.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.task import deferLater
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase

from cmppsvc.backoff import AUTHENTICATION, NETWORK, REFUSED
from cmppsvc.codec import Submit
from cmppsvc.connector import ChannelConnector
from cmppsvc.settings import ConnectionSettings
from cmppsvc.simulator import Behaviour, SimulatorFactory
from cmppsvc.window import SubmitFailed, SubmitOutcome

ACCOUNT = "901234"
PASSWORD = "pw-never-shown-42"

QUICK_CURVES = {
    NETWORK: (0.05, 0.2, 2.0, 0.0),
    REFUSED: (0.05, 0.2, 2.0, 0.0),
    AUTHENTICATION: (0.3, 0.3, 2.0, 0.0),
}
"""Reconnect delays short enough for tests (see ``cmppsvc.backoff.CURVES``)."""


def content(index: int) -> bytes:
    """The unique text of message ``index``, to find it again at the gateway."""
    return b"message %05d" % index


def message(index: int) -> Submit:
    """A small SUBMIT to one number, asking for a status report."""
    return Submit(
        msg_src=ACCOUNT,
        src_id="10690001",
        dest_terminal_ids=("13800138000",),
        msg_fmt=15,
        msg_content=content(index),
    )


class Ledger:
    """What became of every submitted message: outcomes and Sequence_Ids given."""

    def __init__(self) -> None:
        self.outcomes: dict[int, list[object]] = {}
        self.seqs: dict[int, list[int]] = {}

    def track(self, connector: ChannelConnector, index: int) -> Deferred:
        """Submit message ``index`` and record whatever it ends with."""
        self.outcomes[index] = []
        self.seqs[index] = seqs = []
        deferred = connector.submit(message(index), seqs.append)

        def ended(result: object) -> None:
            self.outcomes[index].append(
                result.value if hasattr(result, "value") else result
            )

        return deferred.addBoth(ended)

    def ended(self) -> int:
        """How many messages have an outcome."""
        return sum(1 for outcomes in self.outcomes.values() if outcomes)

    def all_ended(self) -> bool:
        """Whether every message has an outcome."""
        return self.ended() == len(self.outcomes)

    def final(self) -> dict[int, object]:
        """The one outcome of every message; fails when any has none or several."""
        counts = {index: len(found) for index, found in self.outcomes.items()}
        wrong = {index: count for index, count in counts.items() if count != 1}
        if wrong:
            raise AssertionError(f"messages without exactly one outcome: {wrong}")
        return {index: found[0] for index, found in self.outcomes.items()}

    def successes(self) -> dict[int, SubmitOutcome]:
        """The messages that ended with a SubmitOutcome."""
        return {
            index: outcome
            for index, outcome in self.final().items()
            if isinstance(outcome, SubmitOutcome)
        }

    def failures(self) -> dict[int, SubmitFailed]:
        """The messages that ended with a SubmitFailed."""
        return {
            index: outcome
            for index, outcome in self.final().items()
            if isinstance(outcome, SubmitFailed)
        }


@inlineCallbacks
def wait_until(
    predicate: Callable[[], bool], what: str, deadline: float = 20.0
) -> Deferred:
    """Poll ``predicate`` on the reactor until it holds; fail after ``deadline``."""
    end = reactor.seconds() + deadline
    while not predicate():
        if reactor.seconds() > end:
            raise AssertionError(f"gave up waiting for {what}")
        yield deferLater(reactor, 0.02, lambda: None)


def pause(seconds: float) -> Deferred:
    """Let the reactor run for ``seconds``."""
    return deferLater(reactor, seconds, lambda: None)


class IntegrationCase(TestCase):
    """Starts a simulator on 127.0.0.1 and a connector to it; cleans both up.

    Every log event is checked for the password at the end of the test.
    """

    timeout = 60

    def setUp(self) -> None:
        self.logged: list[str] = []
        globalLogPublisher.addObserver(self._observe)
        self.addCleanup(globalLogPublisher.removeObserver, self._observe)
        self.addCleanup(self._check_no_password)
        self.ledger = Ledger()
        self.states: list[tuple[str, dict]] = []
        self.delivered: list = []
        self.late: list = []
        self.seq = 0

    def _observe(self, event: dict) -> None:
        text = formatEvent(event) or ""
        self.logged.append(text + " " + repr(sorted(map(str, event.values()))))

    def _check_no_password(self) -> None:
        leaks = [line for line in self.logged if PASSWORD in line]
        self.assertEqual(leaks, [], "the password appeared in a log event")
        for state, info in self.states:
            self.assertNotIn(PASSWORD, repr((state, info)))

    def next_seq(self) -> int:
        self.seq = self.seq + 1 if self.seq < 0xFFFFFFFF else 1
        return self.seq

    @inlineCallbacks
    def start(
        self,
        behaviour: Behaviour | None = None,
        gateway_password: str = PASSWORD,
        curves: dict | None = QUICK_CURVES,
        on_state: Callable[[str, dict], None] | None = None,
        **changes: object,
    ) -> Deferred:
        """Listen a simulator on 127.0.0.1, start a connector to it."""
        self.simulator = SimulatorFactory(
            {ACCOUNT: gateway_password},
            reactor,
            behaviour or Behaviour(report_delay=0.05),
            record_submits=True,
        )
        port = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            self.simulator
        )
        self.addCleanup(port.stopListening)
        self.addCleanup(
            wait_until,
            lambda: not self.simulator.connections,
            "the simulator's connections to close",
        )

        values: dict = {
            "channel_id": "loopback",
            "account": ACCOUNT,
            "password": PASSWORD,
            "host": "127.0.0.1",
            "port": port.getHost().port,
            "window": 16,
            "response_timeout": 0.5,
            "attempts": 3,
            "heartbeat_interval": 0.5,
            "stop_timeout": 0.5,
            "rate": 2000,
        }
        values.update(changes)
        self.settings = ConnectionSettings(**values)

        def state_changed(state: str, info: dict) -> None:
            self.states.append((state, info))
            if on_state is not None:
                on_state(state, info)

        self.connector = ChannelConnector(
            self.settings,
            reactor,
            self.next_seq,
            self.delivered.append,
            state_changed=state_changed,
            late_response=lambda seq, response: self.late.append((seq, response)),
            random_source=lambda: 0.0,
            backoff_curves=curves,
        )
        self.connector.startService()
        self.addCleanup(self.stop)

    def stop(self) -> Deferred | None:
        """Stop the connector gracefully (once)."""
        if self.connector.running:
            return self.connector.stopService()
        return None

    def submit(self, count: int, first: int = 0) -> None:
        """Submit messages ``first`` .. ``first + count - 1``."""
        for index in range(first, first + count):
            self.ledger.track(self.connector, index)

    def counters(self):
        """The simulator's counters of the test account."""
        return self.simulator.counters(ACCOUNT)

    def wait_all_ended(self, deadline: float = 30.0) -> Deferred:
        """Wait until every submitted message has an outcome."""
        return wait_until(
            self.ledger.all_ended, "every message to end", deadline=deadline
        )

    def assert_settled(self) -> None:
        """Nothing queued or outstanding is left, and every success is real.

        Each SubmitOutcome must match a SUBMIT the gateway answered: same text, same
        Sequence_Id, same Msg_Id; and its seq is one the submit was given.
        """
        status = self.connector.status()
        self.assertEqual(status["queued"], 0)
        self.assertEqual(status["window_in_use"], 0)

        answered = {
            (record.msg_content, record.seq, record.msg_id)
            for record in self.simulator.submits
            if record.result == 0
        }
        for index, outcome in self.ledger.successes().items():
            self.assertIn(outcome.seq, self.ledger.seqs[index])
            if outcome.result == 0:
                self.assertIn((content(index), outcome.seq, outcome.msg_id), answered)
