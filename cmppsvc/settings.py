# -*- test-case-name: tests.test_connector_settings -*-
"""The settings of one channel's connections: gateway, account, timers, window and rate.

Every field is validated when the object is built, and a bad value raises ``ValueError``
naming the field, so one badly configured channel fails alone and clearly.  Defaults
are the CMPP specification's recommended timers (reference section 9.1: T = 60 s,
N = 3, C = 180 s, W = 16).
"""

from __future__ import annotations

import attrs

DEFAULT_RATE = 100.0
"""Submits per second used when a channel gives no rate, or gives 0: a pace that most
operators' contracts allow, slow enough that an unconfigured channel is never punished
for flooding, fast enough to be useful."""


def channel_rate(*rates: float | int | str | None) -> float:
    """The rate a channel may send at: the lowest of the positive ``rates`` given.

    The channel record carries both ``speed`` and ``sendRate``; either may be absent,
    0, or text.  Values that are missing, not numbers, or not above 0 are ignored, and
    when none is left the documented ``DEFAULT_RATE`` applies, so no caller ever
    divides by zero.
    """
    usable = []
    for rate in rates:
        try:
            value = float(rate)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue

        if value > 0 and value != float("inf"):
            usable.append(value)

    return min(usable) if usable else DEFAULT_RATE


def _positive(instance: object, attribute: attrs.Attribute, value: float) -> None:
    """An attrs validator: the value is a number above 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{attribute.name} must be a number above 0, got {value!r}")


def _not_negative(instance: object, attribute: attrs.Attribute, value: float) -> None:
    """An attrs validator: the value is a number not below 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(
            f"{attribute.name} must be a number of 0 or more, got {value!r}"
        )


def _whole_positive(instance: object, attribute: attrs.Attribute, value: int) -> None:
    """An attrs validator: the value is an integer of 1 or more."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"{attribute.name} must be an integer of 1 or more, got {value!r}"
        )


def _text(instance: object, attribute: attrs.Attribute, value: str) -> None:
    """An attrs validator: the value is a string (the password's value never shown)."""
    if not isinstance(value, str):
        raise ValueError(f"{attribute.name} must be text, got {type(value).__name__}")


def _version(instance: object, attribute: attrs.Attribute, value: int) -> None:
    """An attrs validator: a CMPP version byte (0x20, 0x21 or 0x30 in practice)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 256:
        raise ValueError(f"version must be a byte such as 0x20 or 0x30, got {value!r}")


def _port(instance: object, attribute: attrs.Attribute, value: int) -> None:
    """An attrs validator: a TCP port number."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise ValueError(f"port must be an integer from 1 to 65535, got {value!r}")


@attrs.frozen
class ConnectionSettings:
    """How to reach and behave towards one channel's gateway.

    ``account`` is the CONNECT Source_Addr; ``password`` is the shared secret and never
    appears in a repr, a log line or an error.  ``window`` (W) bounds the unanswered
    submits per connection; ``response_timeout`` (T) is how long a request waits for
    its answer; ``attempts`` (N) is how many times one request is sent before it fails,
    and how many unanswered heartbeats drop a connection; ``heartbeat_interval`` (C) is
    the idle time before an ACTIVE_TEST.  ``connections`` is how many TCP sessions the
    channel keeps.  ``rate`` is submits per second for the whole channel, counted per
    SUBMIT PDU; 0 means ``DEFAULT_RATE``.  ``flow_control_retries`` caps the resends of
    one segment answered "flow control" (Result 8).  ``stop_timeout`` bounds the wait
    for outstanding answers on a graceful stop.
    """

    channel_id: str = attrs.field(validator=_text)
    account: str = attrs.field(validator=_text)
    password: str = attrs.field(repr=False, validator=_text)
    host: str = attrs.field(validator=_text)
    port: int = attrs.field(validator=_port)
    version: int = attrs.field(default=0x20, validator=_version)
    window: int = attrs.field(default=16, validator=_whole_positive)
    response_timeout: float = attrs.field(default=60.0, validator=_positive)
    attempts: int = attrs.field(default=3, validator=_whole_positive)
    heartbeat_interval: float = attrs.field(default=180.0, validator=_positive)
    connections: int = attrs.field(default=1, validator=_whole_positive)
    rate: float = attrs.field(default=0, validator=_not_negative)
    flow_control_retries: int = attrs.field(default=30, validator=_whole_positive)
    stop_timeout: float = attrs.field(default=5.0, validator=_not_negative)

    @property
    def effective_rate(self) -> float:
        """Submits per second actually used: ``rate``, or ``DEFAULT_RATE`` when 0."""
        return channel_rate(self.rate)

    @property
    def gateway(self) -> str:
        """The gateway address as ``host:port``, for log lines and status."""
        return f"{self.host}:{self.port}"
