# -*- test-case-name: tests.test_codec,tests.test_codec_properties -*-
"""Octet String fields: fixed-width text, NUL padded on the right.

Decoding cuts at the first NUL and trims spaces (some peers pad with spaces), then reads
ASCII, falling back to GBK with replacement characters for anything else.  Encoding
uses GBK (an ASCII superset) and refuses a value longer than its field: a silently cut
phone number is worse than an error.

Both directions go through small bounded memo tables, because the same service codes,
fee fields and empty values recur in almost every PDU; a table is cleared when it
reaches ``CACHE_LIMIT`` entries, so hostile input cannot grow it.
"""

from __future__ import annotations

CACHE_LIMIT = 4096
"""Entries per memo table before it is cleared."""


def text_from_octets(raw: bytes) -> str:
    """The text of an Octet String field's raw bytes (uncached)."""
    cut = raw.split(b"\0", 1)[0].strip(b" ")
    try:
        return cut.decode("ascii")
    except UnicodeDecodeError:
        return cut.decode("gbk", "replace")


class FieldTooLongError(ValueError):
    """A text value does not fit its field (the caller names the field)."""


def octets_from_text(value: str | bytes, size: int) -> bytes:
    """The unpadded bytes of ``value`` for a field of ``size`` bytes (uncached).

    Raises FieldTooLongError when the encoded value is longer than the field, and
    ValueError or TypeError when it is not text.
    """
    if isinstance(value, str):
        # GBK is an ASCII superset; its codec is four times slower than ASCII's,
        # and numbers and codes (most misses of the memo tables) are ASCII.
        try:
            data = value.encode("ascii")
        except UnicodeEncodeError:
            data = value.encode("gbk")
    elif isinstance(value, bytes):
        data = value
    else:
        raise TypeError(f"expected str, got {type(value).__name__}")
    if len(data) > size:
        raise FieldTooLongError(f"{len(data)} bytes do not fit {size}")
    return data


class _DecodeCache(dict):
    """raw field bytes -> text; a miss computes and remembers."""

    __slots__ = ()

    def __missing__(self, raw: bytes) -> str:
        text = text_from_octets(raw)
        if len(self) >= CACHE_LIMIT:
            self.clear()
        self[raw] = text
        return text


class _EncodeCache(dict):
    """text -> unpadded bytes checked against one field size; a miss computes."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def __missing__(self, value: str) -> bytes:
        data = octets_from_text(value, self.size)
        if len(self) >= CACHE_LIMIT:
            self.clear()
        self[value] = data
        return data


DECODED = _DecodeCache()
"""``DECODED[raw]`` is the text of an Octet String field (memoised)."""

_ENCODERS: dict[int, _EncodeCache] = {}


def encoder_for(size: int) -> _EncodeCache:
    """The memo table ``t`` for fields of ``size`` bytes: ``t[value]`` is the checked
    unpadded bytes of ``value`` (struct's ``Ns`` pads them with NUL)."""
    table = _ENCODERS.get(size)
    if table is None:
        table = _ENCODERS[size] = _EncodeCache(size)
    return table
