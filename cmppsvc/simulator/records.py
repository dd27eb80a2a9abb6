# -*- test-case-name: tests.test_simulator_parts -*-
"""What the simulated gateway saw, for tests to assert on."""

from __future__ import annotations

import attrs

from cmppsvc.codec import Submit

UNKNOWN_ACCOUNT = ""
"""The counters key of every CONNECT naming an account the simulator lacks."""


@attrs.define
class AccountCounters:
    """Counts of one account's traffic, over all its connections."""

    connections: int = 0  # TCP connections that sent a CONNECT for the account
    logins: int = 0  # CONNECT_RESP with Status 0
    refused_logins: int = 0  # CONNECT_RESP with another status
    disconnects: int = 0  # logged-in connections that ended
    submits: int = 0  # SUBMIT PDUs received after login
    destinations: int = 0  # destinations in them (a mass-send counts each)
    submits_refused: int = 0  # answered with a non-zero Result
    flow_controlled: int = 0  # of which Result 8 from flow_control_rate
    submits_unanswered: int = 0  # held by drop_with_full_window
    reports_sent: int = 0  # status-report DELIVERs written (resent ones included)
    reports_kept: int = 0  # unsent or unanswered when their connection ended
    reports_resent: int = 0  # kept ones written again on a later connection
    reports_dropped: int = 0  # kept ones dropped beyond kept_reports_per_account
    mo_sent: int = 0  # MO DELIVERs written (one per segment)
    deliver_responses: int = 0  # DELIVER_RESP received
    deliver_responses_refused: int = 0  # of which with a non-zero Result
    active_tests_received: int = 0
    active_tests_ignored: int = 0  # not answered (ignore_heartbeats)
    active_tests_sent: int = 0
    active_test_responses: int = 0
    terminates_received: int = 0
    terminates_sent: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict."""
        return attrs.asdict(self)


@attrs.frozen
class ReceivedSubmit:
    """One SUBMIT as received (recorded when ``record_submits`` is on).

    ``msg_id`` is the Msg_Id the SUBMIT_RESP carried (the first of the range for
    a mass-send; 0 when the submit was refused or left unanswered).
    """

    account: str
    version: int
    seq: int
    msg_id: int
    result: int | None  # None: left unanswered
    submit: Submit

    @property
    def dest_terminal_ids(self) -> tuple[str, ...]:
        """The destination numbers."""
        return tuple(self.submit.dest_terminal_ids)

    @property
    def msg_content(self) -> bytes:
        """Msg_Content as sent, UDH included."""
        return self.submit.msg_content

    @property
    def pk_total(self) -> int:
        """Pk_total of the segment."""
        return self.submit.pk_total

    @property
    def pk_number(self) -> int:
        """Pk_number of the segment."""
        return self.submit.pk_number
