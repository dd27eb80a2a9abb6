# -*- test-case-name: tests.test_config -*-
"""One channel's configuration, parsed from its `channel-info:<id>` record.

The record is a JSON object written by the operators' admin system (the format
of tests/fixtures/channel-info.redis). `parse_channel_record` turns it into a
`ChannelConfig` (cmppsvc.configschema), in which every field of that format has
a typed attribute, plus the optional fields cmppsvc adds (cmppVersion, window,
...). Unknown fields are kept in `extra` and otherwise ignored. A record
cmppsvc cannot use raises `ChannelConfigError` naming the channel, the field
and the reason: an error of that channel alone, never of the service.
docs/channel-record.md lists every field.

The password (`passpwd`) is never shown: not by repr or str, not in an error,
not by `public_fields()`.
"""

from __future__ import annotations

import json
import types
from typing import Any

import attrs

from cmppsvc.configfields import ChannelConfigError, json_type
from cmppsvc.configschema import (
    DEFAULT_RATE,
    FIELDS_BY_RECORD_NAME,
    MAX_RECORD_BYTES,
    SRC_ID_LENGTH,
    ChannelConfig,
    convert_field,
    is_secret_field,
    record_fields,
)
from cmppsvc.configtext import parse_redis_cli_script, rewrite_record_gateway

__all__ = [
    "DEFAULT_RATE",
    "MAX_RECORD_BYTES",
    "SRC_ID_LENGTH",
    "ChannelConfig",
    "ChannelConfigError",
    "parse_channel_record",
    "parse_redis_cli_script",
    "rewrite_record_gateway",
]


def _load_json(channel_id: str, raw: bytes | str | None) -> dict[str, Any]:
    """Bound, decode and parse the record; it must be a JSON object."""
    if raw is None:
        raise ChannelConfigError(channel_id, "record", "missing")
    if not isinstance(raw, (bytes, bytearray, str)):
        raise ChannelConfigError(
            channel_id, "record", f"must be text, got {type(raw).__name__}"
        )

    # Each character is at least one byte, so a long str is refused before
    # encoding it.
    if len(raw) > MAX_RECORD_BYTES or (
        isinstance(raw, str) and len(raw.encode("utf-8", "replace")) > MAX_RECORD_BYTES
    ):
        raise ChannelConfigError(
            channel_id, "record", f"longer than {MAX_RECORD_BYTES} bytes"
        )

    problem = None
    try:
        document = raw if isinstance(raw, str) else bytes(raw).decode("utf-8-sig")
        data = json.loads(document, parse_constant=_refuse_constant)
    except UnicodeDecodeError as error:
        problem = f"not UTF-8 text (byte {error.start})"
    except json.JSONDecodeError as error:
        # error.msg and the position only: str(error.doc) is the whole record.
        problem = (
            f"not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
        )
    except RecursionError:
        problem = "not valid JSON: nested too deeply"
    except ValueError as error:
        problem = f"not valid JSON: {error}"
    if problem is not None:
        raise ChannelConfigError(channel_id, "record", problem)

    if not isinstance(data, dict):
        raise ChannelConfigError(
            channel_id, "record", f"must be a JSON object, got {json_type(data)}"
        )
    return data


def _without_secrets(error: ChannelConfigError, data: dict) -> ChannelConfigError:
    """``error`` with the record's secrets (the password, ...) blanked out of its
    reason: a refused value is quoted there, and a password typed into the
    wrong field must not reach the log and the status hash that way."""
    reason = error.reason
    for name, value in data.items():
        if isinstance(value, str) and value and is_secret_field(name):
            for shown in {value, repr(value)[1:-1]}:
                reason = reason.replace(shown, "***")
    if reason == error.reason:
        return error
    return ChannelConfigError(error.channel_id, error.field, reason)


def _refuse_constant(name: str) -> Any:
    """json.loads hook: NaN and Infinity are not JSON."""
    raise ValueError(f"{name} is not a JSON number")


def parse_channel_record(channel_id: str, raw: bytes | str) -> ChannelConfig:
    """Parse the JSON of `channel-info:<channel_id>` into a ChannelConfig.

    Raises ChannelConfigError for a record over MAX_RECORD_BYTES, bad JSON, a
    non-object, a missing or empty account, gatewayIp or gatewayPort, and any
    field of the wrong type or out of range. Unknown fields go to `extra`.
    """
    data = _load_json(channel_id, raw)

    values: dict[str, Any] = {}
    for field in record_fields():
        names = (field.metadata["record"], *field.metadata["aliases"])
        present = [name for name in names if name in data]
        if present:
            try:
                values[field.name] = convert_field(
                    channel_id, present[0], data[present[0]]
                )
            except ChannelConfigError as error:
                raise _without_secrets(error, data) from None
        elif field.default is attrs.NOTHING:
            raise ChannelConfigError(channel_id, names[0], "missing")

    # Effective values: the admin system's copies stand in for empty fields.
    if not values.get("service_id"):
        values["service_id"] = values.get("gateway_service_id", "")
    if not values.get("number"):
        values["number"] = values.get("gateway_number", "")
    if not values.get("corp_id"):
        values["corp_id"] = values["account"]

    extra = {
        name: value for name, value in data.items() if name not in FIELDS_BY_RECORD_NAME
    }
    return ChannelConfig(
        channel_id=channel_id, extra=types.MappingProxyType(extra), **values
    )
