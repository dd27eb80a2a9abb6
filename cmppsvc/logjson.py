# -*- test-case-name: tests.test_logjson -*-
"""Flat JSON log lines, one object per event, for the operators' log tools.

Twisted's own JSON observer keeps its internal keys (`log_format`,
`log_namespace`, ...); log pipelines on SMS platforms expect flat objects such
as `{"time": ..., "level": "info", "module": ..., "msg": ..., "channel": ...}`.
This observer writes exactly that, with every event field that is a plain
value. Use it with `twistd --logger cmppsvc.logjson.observer cmppsvc ...`.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from typing import IO, Any

from twisted.logger import ILogObserver, LogLevel, formatEvent
from zope.interface import implementer

_PLAIN = (str, int, float, bool, type(None))


def flatten_event(event: dict[str, Any]) -> dict[str, Any]:
    """The event as a flat dict: time, level, module, msg, then its fields."""
    level = event.get("log_level", LogLevel.info)
    timestamp = event.get("log_time")
    when = None
    if timestamp:
        when = datetime.fromtimestamp(timestamp, timezone.utc)
    flat: dict[str, Any] = {
        "time": when.isoformat(timespec="milliseconds") if when else None,
        # The levels are NamedConstants: their name is what log tools expect.
        "level": getattr(level, "name", None) or str(level),
        "module": event.get("log_namespace", ""),
        "msg": formatEvent(event),
    }
    for key, value in event.items():
        if key.startswith("log_") or key in flat or key == "message":
            continue
        if isinstance(value, _PLAIN):
            flat[key] = value
    failure = event.get("log_failure")
    if failure is not None:
        flat["error"] = failure.getErrorMessage()
        flat["traceback"] = failure.getTraceback()
    return flat


@implementer(ILogObserver)
class FlatJSONObserver:
    """Writes each event as one line of flat JSON to a text stream."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def __call__(self, event: dict[str, Any]) -> None:
        self._stream.write(json.dumps(flatten_event(event), ensure_ascii=False))
        self._stream.write("\n")
        self._stream.flush()


def observer() -> FlatJSONObserver:
    """The factory twistd's `--logger` option calls: JSON lines on stdout."""
    return FlatJSONObserver(sys.stdout)
