# -*- test-case-name: tests.test_resp -*-
"""Redis's wire format (RESP2): command encoding and a reply reader.

On CPython both come from hiredis, in C. On PyPy a call into a C extension
goes through its CPython emulation layer and costs several times the work it
does (hiredis's reader: about 0.4 us per reply value, against 0.03 on CPython),
while plain Python is compiled by the JIT; there the pure-Python versions below
are used. Both give the same bytes and the same values (tests/test_resp.py
compares them).
"""

import sys

import hiredis

#: Longest status, error or length line accepted, the largest string and the
#: most values one array may announce (Redis's own limits for a bulk string),
#: and how deeply arrays may nest: a peer announcing more is broken or hostile.
MAX_LINE = 64 * 1024
MAX_BULK = 512 * 1024 * 1024
MAX_ARRAY = 16 * 1024 * 1024
MAX_DEPTH = 32

_CRLF = b"\r\n"


def pure_pack_command(arguments: tuple) -> bytes:
    """One command as RESP, as ``hiredis.pack_command`` encodes it: str as
    UTF-8, int and float as their ``repr``; other types raise ``TypeError``."""
    parts = [b"*%d\r\n" % len(arguments)]
    append = parts.append
    for value in arguments:
        kind = value.__class__
        if kind is bytes:
            pass
        elif kind is str:
            value = value.encode()
        elif kind is int or kind is float:
            value = repr(value).encode()
        else:
            value = _other(value)
        append(b"$%d\r\n%b\r\n" % (len(value), value))
    return b"".join(parts)


def _other(value) -> bytes:
    # What hiredis accepts besides the exact types: subclasses of str, int
    # (not bool) and float, and memoryview.
    if isinstance(value, str):
        return str.encode(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return int.__repr__(value).encode()
    if isinstance(value, float):
        return float.__repr__(value).encode()
    if isinstance(value, memoryview):
        return value.tobytes()
    raise TypeError("A tuple item must be str, int, float or bytes.")


class _Incomplete(Exception):  # noqa: N818 (a signal, not an error)
    """The buffer ends inside the reply being read."""


class PureReader:
    """``hiredis.Reader``'s interface in plain Python: ``feed(data)``, then
    ``gets()`` for each complete reply, ``False`` while none is. Error replies
    come back as ``replyError`` instances; a stream that is not RESP raises
    ``protocolError``, after which the reader is unusable, as hiredis's."""

    def __init__(
        self, protocolError=hiredis.ProtocolError, replyError=hiredis.ReplyError
    ):
        self._protocol_error = protocolError
        self._reply_error = replyError
        self._buffer = b""
        self._position = 0

    def feed(self, data, offset: int = 0, length: int = -1) -> None:
        if length < 0:
            length = len(data) - offset
        chunk = bytes(data[offset : offset + length])
        if self._position:
            self._buffer = self._buffer[self._position :] + chunk
            self._position = 0
        else:
            self._buffer += chunk

    def gets(self):
        if self._position >= len(self._buffer):
            return False
        try:
            reply, self._position = self._read(self._position)
        except _Incomplete:
            return False
        return reply

    def _line(self, position: int) -> tuple[bytes, int]:
        end = self._buffer.find(_CRLF, position)
        if end < 0:
            if len(self._buffer) - position > MAX_LINE:
                raise self._protocol_error("line too long")
            raise _Incomplete
        if end - position > MAX_LINE:
            raise self._protocol_error("line too long")
        return self._buffer[position:end], end + 2

    def _number(self, text: bytes) -> int:
        try:
            return int(text)
        except ValueError:
            raise self._protocol_error(f"bad number {text[:32]!r}") from None

    def _read(self, position: int, depth: int = 0):
        buffer = self._buffer
        if position >= len(buffer):
            raise _Incomplete
        kind = buffer[position]
        line, position = self._line(position + 1)
        if kind == 36:  # $ bulk string
            size = self._number(line)
            if size < 0:
                return None, position
            if size > MAX_BULK:
                raise self._protocol_error(f"bulk string of {size} bytes")
            end = position + size
            if end + 2 > len(buffer):
                raise _Incomplete
            if buffer[end : end + 2] != _CRLF:
                raise self._protocol_error("bulk string without its CRLF")
            return buffer[position:end], end + 2
        if kind == 42:  # * array
            count = self._number(line)
            if count < 0:
                return None, position
            if count > MAX_ARRAY:
                raise self._protocol_error(f"array of {count} values")
            if depth >= MAX_DEPTH:
                raise self._protocol_error(f"arrays nested deeper than {MAX_DEPTH}")
            depth += 1
            values = []
            append = values.append
            read = self._read
            for _ in range(count):
                value, position = read(position, depth)
                append(value)
            return values, position
        if kind == 58:  # : integer
            return self._number(line), position
        if kind == 43:  # + status
            return line, position
        if kind == 45:  # - error
            return self._reply_error(line.decode("utf-8", "replace")), position
        raise self._protocol_error(f"unknown reply type {bytes([kind])!r}")


if sys.implementation.name == "pypy":
    pack_command = pure_pack_command
    Reader = PureReader
else:
    pack_command = hiredis.pack_command
    Reader = hiredis.Reader
