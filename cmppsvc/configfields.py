# -*- test-case-name: tests.test_config -*-
"""Converters for the fields of a channel record, one per kind of value.

The admin system that writes `channel-info:<id>` is loose about JSON types: it
sends numbers as strings ("balance":"0"), codes as numbers or strings, and
booleans in several spellings. Each converter here accepts the spellings seen
in practice, returns one Python type, and raises `FieldError` with a reason
otherwise. A converter built with `secret=True` never puts the value into its
reason, so the channel password cannot leak through an error.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

# A numeric string longer than this is garbage, not a number; refusing it
# early keeps int() and float() away from megabyte-long digit strings.
MAX_NUMBER_TEXT = 40

# How much of a refused value an error message quotes.
MAX_QUOTED_VALUE = 40

_INTEGER_TEXT = re.compile(r"[+-]?[0-9]+")
_DECIMAL_TEXT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_TRUE_TEXT = frozenset({"true", "1", "yes", "on"})
_FALSE_TEXT = frozenset({"false", "0", "no", "off", ""})


class FieldError(ValueError):
    """A field value that cannot be used; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ChannelConfigError(ValueError):
    """A channel record cmppsvc cannot use; names channel, field and reason.

    `field` is the record's own field name (what an operator edits), or
    "record" when the record as a whole is unusable. Never holds the password.
    """

    def __init__(self, channel_id: str, field: str, reason: str) -> None:
        super().__init__(f"channel {channel_id}: {field}: {reason}")
        self.channel_id = channel_id
        self.field = field
        self.reason = reason


def quote(value: Any) -> str:
    """A short repr of a refused value for an error message."""
    text = repr(value)
    if len(text) > MAX_QUOTED_VALUE:
        text = text[: MAX_QUOTED_VALUE - 3] + "..."
    return text


def json_type(value: Any) -> str:
    """The JSON name of a value's type, for "must be X, got Y" reasons."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


Converter = Callable[[Any], Any]


def integer(minimum: int, maximum: int) -> Converter:
    """An integer in [minimum, maximum]; a decimal string or integral float is
    accepted. JSON booleans are refused: true is not a port number."""

    def convert(value: Any) -> int:
        if isinstance(value, bool):
            raise FieldError(f"must be an integer, got {json_type(value)}")

        if isinstance(value, int):
            number = value
        elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
            number = int(value)
        elif isinstance(value, str):
            text = value.strip()
            if not text:
                raise FieldError("is empty")
            if len(text) > MAX_NUMBER_TEXT or not _INTEGER_TEXT.fullmatch(text):
                raise FieldError(f"must be an integer, got {quote(value)}")
            number = int(text)
        else:
            raise FieldError(f"must be an integer, got {json_type(value)}")

        if not minimum <= number <= maximum:
            raise FieldError(f"{number} is out of range {minimum}..{maximum}")
        return number

    convert.kind = "integer"
    return convert


def decimal(minimum: float, maximum: float) -> Converter:
    """A finite number in [minimum, maximum]; a decimal string is accepted."""

    def convert(value: Any) -> float:
        if isinstance(value, bool):
            raise FieldError(f"must be a number, got {json_type(value)}")

        if isinstance(value, (int, float)):
            number = float(value)
        elif isinstance(value, str):
            text = value.strip()
            if not text:
                raise FieldError("is empty")
            if len(text) > MAX_NUMBER_TEXT or not _DECIMAL_TEXT.fullmatch(text):
                raise FieldError(f"must be a number, got {quote(value)}")
            number = float(text)
        else:
            raise FieldError(f"must be a number, got {json_type(value)}")

        if not math.isfinite(number) or not minimum <= number <= maximum:
            raise FieldError(f"{number:g} is out of range {minimum:g}..{maximum:g}")
        return number

    convert.kind = "number"
    return convert


def boolean() -> Converter:
    """true/false, 1/0, or the strings "true"/"false"/"1"/"0"/"yes"/"no"."""

    def convert(value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str):
            text = value.strip().lower()
            if text in _TRUE_TEXT:
                return True
            if text in _FALSE_TEXT:
                return False
        raise FieldError(f"must be true or false, got {quote(value)}")

    convert.kind = "boolean"
    return convert


def text(
    max_length: int = 1024,
    *,
    required: bool = False,
    ascii_only: bool = False,
    digits_only: bool = False,
    choices: frozenset[str] | None = None,
    secret: bool = False,
) -> Converter:
    """A string. A JSON number is accepted and written in decimal ("corpid":
    100007 is "100007"); null is the empty string. `max_length` counts
    characters (bytes when `ascii_only`, as CMPP octet strings are ASCII)."""

    def shown(value: Any) -> str:
        return "the value" if secret else quote(value)

    def convert(value: Any) -> str:
        if value is None:
            result = ""
        elif isinstance(value, str):
            result = value
        elif isinstance(value, int) and not isinstance(value, bool):
            result = str(value)
        elif isinstance(value, float) and value.is_integer():
            result = str(int(value))
        else:
            raise FieldError(f"must be a string, got {json_type(value)}")

        if required and not result.strip():
            raise FieldError("is empty")
        if len(result) > max_length:
            raise FieldError(f"{len(result)} characters, at most {max_length}")
        if ascii_only and not result.isascii():
            raise FieldError(f"must be ASCII, got {shown(result)}")
        if digits_only and result and not (result.isascii() and result.isdigit()):
            raise FieldError(f"must be digits only, got {shown(result)}")
        if choices is not None and result not in choices:
            allowed = ", ".join(sorted(choices))
            raise FieldError(f"must be one of {allowed}, got {shown(result)}")
        return result

    convert.kind = "string"
    return convert


def version() -> Converter:
    """The CMPP Version byte: 32 (0x20, 2.0), 33 (0x21, 2.1) or 48 (0x30, 3.0);
    also written "2.0", "2.1", "3.0", "0x20", "0x21", "0x30"."""
    names = {"2.0": 0x20, "2.1": 0x21, "3.0": 0x30}
    to_integer = integer(0, 255)

    def convert(value: Any) -> int:
        if isinstance(value, str):
            name = value.strip().lower()
            if name in names:
                return names[name]
            if name.startswith("0x") and len(name) <= 4:
                try:
                    value = int(name, 16)
                except ValueError:
                    raise FieldError(f"not a CMPP version: {quote(value)}") from None
        if isinstance(value, float):
            value = names.get(f"{value:.1f}", value)

        number = to_integer(value)
        if number not in (0x20, 0x21, 0x30):
            raise FieldError(f"{number} is not 32 (2.0), 33 (2.1) or 48 (3.0)")
        return number

    convert.kind = "integer"
    return convert


def one_of(values: frozenset[int]) -> Converter:
    """An integer that must be one of `values` (a code with a fixed set)."""
    to_integer = integer(-(2**31), 2**31 - 1)

    def convert(value: Any) -> int:
        number = to_integer(value)
        if number not in values:
            allowed = ", ".join(str(each) for each in sorted(values))
            raise FieldError(f"{number} is not one of {allowed}")
        return number

    convert.kind = "integer"
    return convert


_HOST_TEXT = re.compile(r"[A-Za-z0-9._%:-]+")


def host(*, required: bool) -> Converter:
    """A host name or IP address (IPv6 with or without brackets)."""
    to_text = text(253, required=required, ascii_only=True)

    def convert(value: Any) -> str:
        result = to_text(value).strip()
        if result.startswith("[") and result.endswith("]"):
            result = result[1:-1]
        if result and not _HOST_TEXT.fullmatch(result):
            raise FieldError(f"not a host name or IP address: {quote(result)}")
        return result

    convert.kind = "string"
    return convert
