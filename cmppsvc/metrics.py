# -*- test-case-name: tests.test_httpapi -*-
"""Channel statuses as Prometheus metrics (text exposition format 0.0.4).

The figures are those of the status hashes ``cmppsvc:status:<id>``, which the
process running each channel writes every few seconds; so one scrape of any
process shows every channel of every process. Counters restart from zero when
a channel restarts, which Prometheus' `rate()` takes in its stride. The
latency quantiles are read from per-channel histograms kept since the
channel's start (bucket bounds, see cmppsvc.latency), not from a sliding
window.

Written by hand: no Prometheus client is a dependency, and the format is a
few lines of text per family.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from cmppsvc.configschema import is_secret_field
from cmppsvc.owner import CLOSED, CLOSING, CONNECTING, LOGGING_IN, READY

#: The Content-Type of an exposition.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: A channel's states (cmppsvc.channel, plus "broken" for a refused record).
CHANNEL_STATES = ("starting", "running", "stopped", "broken")

#: The states of a channel's connections taken together (cmppsvc.connector).
CONNECTION_STATES = (CONNECTING, LOGGING_IN, READY, CLOSING, CLOSED)


#: Numeric status fields shown as metrics: field -> (metric name, help). A
#: name ending in `_total` is a counter, any other a gauge.
FAMILIES = {
    "submitted": (
        "cmppsvc_submitted_total",
        "SUBMITs sent (one per segment and destination), resends included.",
    ),
    "accepted": (
        "cmppsvc_accepted_total",
        "SUBMITs the gateway accepted (SUBMIT_RESP Result 0).",
    ),
    "rejected": (
        "cmppsvc_rejected_total",
        "SUBMITs the gateway rejected (SUBMIT_RESP Result other than 0).",
    ),
    "failed": (
        "cmppsvc_failed_total",
        "Parts that failed without an answer, and MT entries refused.",
    ),
    "resent": ("cmppsvc_resent_total", "Parts sent again after a restart."),
    "unknown": (
        "cmppsvc_unknown_total",
        "Parts whose outcome is unknown (in flight at a restart).",
    ),
    "reports": ("cmppsvc_reports_total", "Status reports received."),
    "duplicate_reports": (
        "cmppsvc_duplicate_reports_total",
        "Status reports received again for a Msg_Id already reported.",
    ),
    "unmatched": (
        "cmppsvc_unmatched_reports_total",
        "Status reports for a Msg_Id no message is known for.",
    ),
    "mo": ("cmppsvc_mo_total", "Incoming messages (MO), long ones counted once."),
    "connection_flow_control_episodes": (
        "cmppsvc_flow_control_episodes_total",
        "Times the gateway asked the channel to slow down.",
    ),
    "connection_late_responses": (
        "cmppsvc_late_responses_total",
        "Responses that arrived after their request timed out.",
    ),
    "pending_parts": (
        "cmppsvc_pending_parts",
        "Parts read from the MT stream and without an outcome yet.",
    ),
    "connection_window_in_use": (
        "cmppsvc_window_in_use",
        "SUBMITs sent and not answered yet, over all connections.",
    ),
    "connection_window": (
        "cmppsvc_window",
        "Window size over the ready connections.",
    ),
    "connection_queued": (
        "cmppsvc_queued",
        "SUBMITs waiting for a window slot or a rate token.",
    ),
    "connection_connections_ready": (
        "cmppsvc_connections_ready",
        "Connections logged in and ready to send.",
    ),
    "connection_reconnect_failures": (
        "cmppsvc_reconnect_failures",
        "Failed connection attempts since the last success.",
    ),
    "connection_rate": (
        "cmppsvc_submit_rate",
        "Submit rate in use (per second), lowered under flow control.",
    ),
    "connection_configured_rate": (
        "cmppsvc_configured_submit_rate",
        "Submit rate of the channel record (per second).",
    ),
    "connection_connected_since": (
        "cmppsvc_connected_since_seconds",
        "When the oldest ready connection logged in (Unix time).",
    ),
}

#: Latency histograms in the status (field prefix -> metric name, help).
LATENCIES = {
    "subRsptime": (
        "cmppsvc_submit_response_latency_seconds",
        "SUBMIT to SUBMIT_RESP latency since the channel started.",
    ),
    "rspReptime": (
        "cmppsvc_response_report_latency_seconds",
        "SUBMIT_RESP to status report latency since the channel started.",
    ),
}
_QUANTILES = (("0.5", "p50_ms"), ("0.9", "p90_ms"), ("0.99", "p99_ms"))
_LATENCY_SUFFIXES = ("count", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "max_ms")

#: Status fields whose values are numbers (text in the hash).
NUMBER_FIELDS = frozenset(
    list(FAMILIES)
    + [f"{prefix}_{suffix}" for prefix in LATENCIES for suffix in _LATENCY_SUFFIXES]
    + ["connection_last_error_code", "connection_last_error_at"]
    + ["connection_next_attempt_at"]
)


def parse_number(text: str) -> int | float | None:
    """A status value as a number; None when empty or not a number."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return None


def exposition(statuses: Iterable[dict[str, str]]) -> str:
    """The metrics of every channel status ({field: text}, with `channel`)."""
    statuses = [
        {name: value for name, value in status.items() if not is_secret_field(name)}
        for status in statuses
        if status.get("channel")
    ]
    lines: list[str] = []

    info = "Always 1; the labels name the channel's owner process and gateway."
    _header(lines, "cmppsvc_channel_info", "gauge", info)
    for status in statuses:
        labels = {
            name: status.get(name, "") for name in ("owner", "gateway", "version")
        }
        lines.append(_sample("cmppsvc_channel_info", status["channel"], 1, **labels))

    for field, name, known, what in (
        ("state", "cmppsvc_channel_state", CHANNEL_STATES, "the channel"),
        (
            "connection_state",
            "cmppsvc_connection_state",
            CONNECTION_STATES,
            "the channel's connections taken together",
        ),
    ):
        help_text = f"1 for the state {what} is in, 0 for the others."
        _header(lines, name, "gauge", help_text)
        _state_samples(lines, statuses, field, name, known)

    for field, (name, help_text) in FAMILIES.items():
        kind = "counter" if name.endswith("_total") else "gauge"
        _header(lines, name, kind, help_text)
        for status in statuses:
            value = parse_number(status.get(field, ""))
            if value is not None:
                lines.append(_sample(name, status["channel"], value))

    for prefix, (name, help_text) in LATENCIES.items():
        _latency_family(lines, statuses, prefix, name, help_text)
    return "\n".join(lines) + "\n"


def _state_samples(
    lines: list[str],
    statuses: list[dict[str, str]],
    field: str,
    name: str,
    known: tuple[str, ...],
) -> None:
    """A state as a set of 0/1 gauges, one per state (an unknown one added)."""
    for status in statuses:
        current = status.get(field)
        if not current:
            continue
        states = known if current in known else (*known, current)
        for state in states:
            value = 1 if state == current else 0
            lines.append(_sample(name, status["channel"], value, state=state))


def _latency_family(
    lines: list[str],
    statuses: list[dict[str, str]],
    prefix: str,
    name: str,
    help_text: str,
) -> None:
    """A latency histogram's summary: quantiles, sum and count, in seconds."""
    _header(lines, name, "summary", help_text)
    for status in statuses:
        channel = status["channel"]
        count = parse_number(status.get(f"{prefix}_count", ""))
        if count is None:
            continue
        # An empty histogram has no quantiles, only its zero count.
        for quantile, field in _QUANTILES if count else ():
            value = parse_number(status.get(f"{prefix}_{field}", ""))
            if value is not None:
                lines.append(_sample(name, channel, value / 1000, quantile=quantile))
        mean = parse_number(status.get(f"{prefix}_mean_ms", "")) or 0
        lines.append(_sample(name + "_sum", channel, mean * count / 1000))
        lines.append(_sample(name + "_count", channel, count))


def _header(lines: list[str], name: str, kind: str, help_text: str) -> None:
    help_text = help_text.replace("\\", "\\\\").replace("\n", "\\n")
    lines.append(f"# HELP {name} {help_text}")
    lines.append(f"# TYPE {name} {kind}")


def _sample(name: str, channel: str, value: float, **labels: str) -> str:
    pairs = {"channel": channel, **labels}
    text = ",".join(f'{label}="{_escape(text)}"' for label, text in pairs.items())
    return f"{name}{{{text}}} {_number(value)}"


def _escape(label_value: str) -> str:
    return label_value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)
