# -*- test-case-name: tests.test_protocol,tests.test_protocol_hotpath -*-
"""One submit on its way through the sliding window: its record, outcome and failures.

A ``PendingSubmit`` is created once per submit and travels from the connector's
queue into a connection's table of outstanding requests (a dict keyed by ``seq``)
and, after a flow-control answer or a lost connection, back to the queue.  It carries
the two plain callbacks that end the submit (for ``ChannelConnector.submit`` they
fire its Deferred); nothing else is allocated for it until its answer arrives, and
then only the ``SubmitOutcome`` tuple.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

from twisted.logger import Logger

from cmppsvc.codec import Submit
from cmppsvc.codec.codes import submit_result

log = Logger()


class SubmitOutcome(NamedTuple):
    """The gateway's answer to one SUBMIT PDU (immutable).

    ``result`` is the SUBMIT_RESP Result (0 success; other values are final for the
    segment, their meaning in ``reason``); ``sent_at`` and ``answered_at`` are clock
    seconds of the last send and of the answer; ``attempts`` counts the PDUs sent for
    this submit; ``resent`` is True when it was sent again with a new Sequence_Id after
    a connection was lost, so the first copy may have reached the gateway too.

    A named tuple rather than an attrs class: one is built per message at full speed,
    and a tuple costs a seventh of a frozen attrs instance.
    """

    seq: int
    msg_id: int
    result: int
    reason: str
    sent_at: float
    answered_at: float
    attempts: int
    resent: bool = False


class SubmitFailed(Exception):  # noqa: N818 (name fixed by the contract)
    """A submit that has no final answer from the gateway; ``reason`` says why."""

    def __init__(self, reason: str, seq: int = 0, attempts: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.seq = seq
        self.attempts = attempts


class SubmitTimeout(SubmitFailed):
    """Every send of the submit went unanswered for the response timeout."""


class SubmitUnknown(SubmitFailed):
    """The gateway may or may not hold the message: it answered Result 3 (duplicate
    sequence), or the connection was lost with the submit unanswered too often."""


class ChannelStopped(SubmitFailed):
    """The channel stopped before the submit was sent; it is safe to send it later."""


class PendingSubmit:
    """The state of one submit between ``submit()`` and its outcome.

    ``attempts`` counts every PDU sent; ``blind_sends`` counts the sends since the last
    answer of any kind and is what the N limit (``settings.attempts``) is checked
    against, so flow-control resends (answered) do not use up timeout resends.
    """

    __slots__ = (
        "pdu",
        "answered",
        "failed",
        "ended",
        "seq_assigned",
        "seq",
        "frame",
        "attempts",
        "blind_sends",
        "flow_control_retries",
        "sent_at",
        "deadline",
        "resent",
    )

    def __init__(
        self,
        pdu: Submit,
        answered: Callable[[SubmitOutcome], object],
        failed: Callable[[SubmitFailed], object],
        seq_assigned: Callable[[int], None] | None,
    ) -> None:
        self.pdu = pdu
        self.answered = answered
        self.failed = failed
        self.ended = False
        self.seq_assigned = seq_assigned
        self.seq = 0
        self.frame = b""
        self.attempts = 0
        self.blind_sends = 0
        self.flow_control_retries = 0
        self.sent_at = 0.0
        self.deadline = 0.0
        self.resent = False

    def succeed(self, outcome: SubmitOutcome) -> None:
        """Resolve the submit, unless it ended (or was cancelled) already.

        The caller's exception is logged, never raised into the connection.
        """
        if self.ended:
            return
        self.ended = True
        try:
            self.answered(outcome)
        except Exception:
            log.failure("submit outcome handler failed seq={seq}", seq=outcome.seq)

    def fail(self, failure: SubmitFailed) -> None:
        """Fail the submit, unless it ended (or was cancelled) already."""
        if self.ended:
            return
        self.ended = True
        try:
            self.failed(failure)
        except Exception:
            log.failure("submit failure handler failed seq={seq}", seq=self.seq)

    def cancel(self, _deferred: object = None) -> None:
        """Drop the submit: unsent, it is never sent; sent, its answer is ignored.

        Also the canceller of ``ChannelConnector.submit``'s Deferred (its argument).
        """
        self.ended = True


def fail_unsent(record: PendingSubmit) -> None:
    """End a submit the channel stopped before (re)sending it.

    ``SubmitUnknown`` when an earlier copy went out on a connection that was lost
    (the gateway may hold it), ``ChannelStopped`` (safe to send later) otherwise.
    """
    if record.resent:
        record.fail(
            SubmitUnknown(
                "channel stopped before resending a submit whose connection was "
                "lost: the gateway may hold it",
                record.seq,
                record.attempts,
            )
        )
    else:
        record.fail(ChannelStopped("channel stopped before sending"))


@functools.cache
def result_reason(result: int) -> str:
    """The English meaning of a SUBMIT_RESP Result, computed once per code."""
    return str(submit_result(result))


def expire(
    outstanding: dict[int, PendingSubmit],
    now: float,
    timeout: float,
    attempts: int,
    out: list[bytes],
) -> tuple[int, int]:
    """Resend or fail the submits of ``outstanding`` whose deadline has passed.

    A submit sent fewer than ``attempts`` times without an answer is resent as the
    same frame, same Sequence_Id (queued on ``out``); otherwise it leaves the table
    and fails with ``SubmitTimeout``.  Returns (resent, failed) counts.
    """
    expired = [record for record in outstanding.values() if record.deadline <= now]
    failed = 0
    for record in expired:
        if record.blind_sends < attempts:
            record.blind_sends += 1
            record.attempts += 1
            record.sent_at = now
            record.deadline = now + timeout
            out.append(record.frame)
            continue

        del outstanding[record.seq]
        failed += 1
        record.fail(
            SubmitTimeout(
                f"no SUBMIT_RESP after {record.blind_sends} sends {timeout:g} s apart",
                record.seq,
                record.attempts,
            )
        )
    return len(expired) - failed, failed
