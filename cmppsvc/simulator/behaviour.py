# -*- test-case-name: tests.test_simulator_behaviour -*-
"""How the simulated gateway behaves, including the misbehaviours tests need.

One mutable ``Behaviour`` belongs to a ``SimulatorFactory``; every connection
reads it as it goes, so a test may change a setting while clients are
connected. Zero always means "off".
"""

import attrs


def _not_negative(instance: object, attribute: attrs.Attribute, value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must not be negative, got {value!r}")


@attrs.define
class Behaviour:
    """Settings of the simulated gateway; every field is explained beside it."""

    # Seconds between a SUBMIT_RESP and the status report (DELIVER) for a
    # submit asking for one; 0 sends the report right behind the response.
    report_delay: float = attrs.field(default=0.1, validator=_not_negative)

    # Stat of every status report; DELIVRD is the only success value.
    report_stat: str = attrs.field(default="DELIVRD")

    @report_stat.validator
    def _check_stat(self, attribute: attrs.Attribute, value: str) -> None:
        if not (value.isascii() and 0 < len(value) <= 7):
            raise ValueError(f"report_stat must be 1 to 7 ASCII characters: {value!r}")

    # Result of every SUBMIT_RESP; a non-zero result means no report.
    submit_result: int = attrs.field(default=0, validator=_not_negative)

    # Seconds every response (CONNECT_RESP, SUBMIT_RESP, ACTIVE_TEST_RESP,
    # TERMINATE_RESP) is held back: a slow gateway.
    response_delay: float = attrs.field(default=0.0, validator=_not_negative)

    # K: answer no SUBMIT at all and drop the connection once K of them are
    # unanswered, i.e. once the client's window holds K submits.
    drop_with_full_window: int = attrs.field(default=0, validator=_not_negative)

    # R: answer Result 8 (flow control) to submits beyond R destinations per
    # clock second for one account (a mass-send counts once per destination).
    flow_control_rate: float = attrs.field(default=0.0, validator=_not_negative)

    # Answer no ACTIVE_TEST once the client has logged in.
    ignore_heartbeats: bool = False

    # M: send TERMINATE after the M-th SUBMIT of a connection.
    terminate_after_submits: int = attrs.field(default=0, validator=_not_negative)

    # D: send TERMINATE D seconds after a login.
    terminate_after_seconds: float = attrs.field(default=0.0, validator=_not_negative)

    # Seconds to wait for TERMINATE_RESP before closing anyway.
    terminate_timeout: float = attrs.field(default=5.0, validator=_not_negative)

    # Seconds between the simulator's own ACTIVE_TESTs on a logged-in
    # connection.
    heartbeat_interval: float = attrs.field(default=0.0, validator=_not_negative)

    # Status reports kept per account when a connection ends before they were
    # sent or answered by a DELIVER_RESP; the account's next connection gets
    # them.  Beyond this many the oldest are dropped (logged); 0 keeps none.
    kept_reports_per_account: int = attrs.field(
        default=100_000, validator=_not_negative
    )
