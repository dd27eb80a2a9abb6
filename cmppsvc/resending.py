# -*- test-case-name: tests.test_connector -*-
"""What a channel does with a submit the gateway did not simply answer.

``ResendRules`` is part of ``cmppsvc.connector.ChannelConnector``; the rules:

- Flow control (SUBMIT_RESP Result 8): the bucket slows down (``TokenBucket.
  slow_down``) and the same message goes back to the front of the queue, to be sent
  with a new Sequence_Id, at most ``flow_control_retries`` times; after that the submit
  resolves with its Result 8 outcome.  Rate warnings are logged at most once a second.
- Connection lost with submits unanswered: each is resent on the next ready
  connection with a new Sequence_Id, marked ``resent`` (the first copy may have reached
  the gateway), and the lost send counts against ``attempts``; a submit that has used
  all its attempts fails with ``SubmitUnknown``.
- A SUBMIT_RESP for a submit that already failed goes to ``late_response(seq, resp)``
  when given, so the channel can still record the Msg_Id.
"""

from __future__ import annotations

from cmppsvc.codec import SubmitResp
from cmppsvc.window import (
    ChannelStopped,
    PendingSubmit,
    SubmitOutcome,
    SubmitUnknown,
    result_reason,
)

#: SUBMIT_RESP Result of a gateway refusing a submit for flow control.
FLOW_CONTROL = 8


class ResendRules:
    """Flow control, lost connections and late answers, for ChannelConnector."""

    def _flow_controlled(self, record: PendingSubmit) -> None:
        if self._stopping:
            # Refused with Result 8, so the gateway does not hold it: safe to retry.
            record.fail(ChannelStopped("channel stopped before resending a submit"))
            return

        record.blind_sends = 0
        record.flow_control_retries += 1
        if record.flow_control_retries > self.settings.flow_control_retries:
            now = self.clock.seconds()
            record.succeed(
                SubmitOutcome(
                    record.seq,
                    0,
                    FLOW_CONTROL,
                    result_reason(FLOW_CONTROL),
                    record.sent_at,
                    now,
                    record.attempts,
                    record.resent,
                )
            )
            return

        self.limiter.slow_down()
        now = self.clock.seconds()
        if now - self._last_flow_log >= 1.0:
            self._last_flow_log = now
            self.log.warn(
                "gateway answered flow control, slowing down channel={channel} "
                "rate={rate}",
                channel=self.settings.channel_id,
                rate=round(self.limiter.rate, 1),
            )
        self._resends.append(record)

    def _requeue_lost(self, outstanding: list[PendingSubmit]) -> None:
        """Apply the connection-loss rule to submits sent and never answered."""
        attempts = self.settings.attempts
        resent = 0
        for record in outstanding:
            if self._stopping:
                reason = "channel stopped with the submit unanswered"
            elif record.blind_sends >= attempts:
                reason = f"connection lost after {record.blind_sends} unanswered sends"
            else:
                record.resent = True
                self._resends.append(record)
                resent += 1
                continue
            record.fail(
                SubmitUnknown(
                    f"{reason}: the gateway may hold it", record.seq, record.attempts
                )
            )

        self.log.info(
            "connection lost with submits unanswered channel={channel} "
            "to_resend={resent} unknown={unknown}",
            channel=self.settings.channel_id,
            resent=resent,
            unknown=len(outstanding) - resent,
        )
        self._pump()

    def _late_response(self, seq: int, response: SubmitResp) -> None:
        """A SUBMIT_RESP for no outstanding submit: late, or never asked for.

        Logged as a warning at most once a second (a confused gateway can send
        many), with how many came since the last line.
        """
        self.late_responses += 1
        now = self.clock.seconds()
        if now - self._last_late_log >= 1.0:
            self._last_late_log = now
            self.log.warn(
                "SUBMIT_RESP for no outstanding submit (late, or a Sequence_Id "
                "never sent) channel={channel} seq={seq} result={result} "
                "total={total}",
                channel=self.settings.channel_id,
                seq=seq,
                result=response.result,
                total=self.late_responses,
            )
        if self._on_late is not None:
            self._on_late(seq, response)
