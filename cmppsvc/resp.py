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
    # What hiredis accepts besides the exact types: subclasses of bytes, str
    # and float (with their own repr), and memoryview; not int subclasses.
    if isinstance(value, bytes):
        return bytes(value)
    if isinstance(value, str):
        return str.encode(value)
    if isinstance(value, float):
        return repr(value).encode()
    if isinstance(value, memoryview):
        return value.tobytes()
    raise TypeError("A tuple item must be str, int, float or bytes.")


_TYPES = frozenset(b"$*:+-")
_DIGITS = frozenset(b"0123456789")
# Longest integer line Redis sends: a signed 64-bit number.
_MAX_DIGITS = 20


class PureReader:
    """``hiredis.Reader``'s interface in plain Python: ``feed(data)``, then
    ``gets()`` for each complete reply, ``False`` while none is. Error replies
    come back as ``replyError`` instances; a stream that is not RESP raises
    ``protocolError``, and so does every later ``gets``, as with hiredis.

    Reading is resumable: an unfinished array keeps the values read so far,
    so a large reply fed in many pieces costs what reading it once does.
    """

    def __init__(
        self, protocolError=hiredis.ProtocolError, replyError=hiredis.ReplyError
    ):
        self._protocol_error = protocolError
        self._reply_error = replyError
        self._buffer = bytearray()
        self._position = 0
        # Unfinished arrays, outermost first: [values, count still to read].
        self._arrays: list[list] = []
        self._broken: str | None = None

    def feed(self, data, offset: int = 0, length: int = -1) -> None:
        if length < 0:
            length = len(data) - offset
        if not 0 <= offset <= offset + length <= len(data):
            raise ValueError("offset and length out of range")
        # Consumed bytes are dropped once they are most of the buffer.
        if self._position > 65536 and self._position * 2 > len(self._buffer):
            del self._buffer[: self._position]
            self._position = 0
        self._buffer += memoryview(data)[offset : offset + length]

    def gets(self):
        if self._broken is not None:
            raise self._protocol_error(self._broken)
        try:
            return self._next_reply()
        except self._protocol_error as error:
            self._broken = str(error)
            raise

    def _fail(self, reason: str):
        raise self._protocol_error(reason)

    def _next_reply(self):
        arrays = self._arrays
        while True:
            value = self._value()
            if value is _INCOMPLETE:
                return False
            if value is _ARRAY_STARTED:
                if arrays[-1][1]:
                    continue
                value = arrays.pop()[0]
            # Close every array this value completes.
            while arrays:
                values_left = arrays[-1]
                values_left[0].append(value)
                values_left[1] -= 1
                if values_left[1]:
                    break
                value = arrays.pop()[0]
            else:
                return value

    def _value(self):
        """The next value (or a new array pushed): the position moves past it
        only when it is complete."""
        buffer = self._buffer
        position = self._position
        if position >= len(buffer):
            return _INCOMPLETE
        kind = buffer[position]
        if kind not in _TYPES:
            self._fail(f"unknown reply type {bytes([kind])!r}")
        end = buffer.find(b"\r\n", position + 1)
        if end < 0:
            if len(buffer) - position > MAX_LINE:
                self._fail("line too long")
            return _INCOMPLETE
        if end - position > MAX_LINE:
            self._fail("line too long")
        line = bytes(buffer[position + 1 : end])
        after = end + 2

        if kind == 36:  # $ bulk string
            size = self._size(line, MAX_BULK, "bulk string")
            if size < 0:
                self._position = after
                return None
            if after + size + 2 > len(buffer):
                return _INCOMPLETE
            if buffer[after + size : after + size + 2] != b"\r\n":
                self._fail("bulk string without its CRLF")
            self._position = after + size + 2
            return bytes(buffer[after : after + size])
        if kind == 42:  # * array
            count = self._size(line, MAX_ARRAY, "array")
            self._position = after
            if count < 0:
                return None
            if len(self._arrays) >= MAX_DEPTH:
                self._fail(f"arrays nested deeper than {MAX_DEPTH}")
            self._arrays.append([[], count])
            return _ARRAY_STARTED
        self._position = after
        if kind == 58:  # : integer
            return self._integer(line)
        if kind == 43:  # + status
            return line
        return self._reply_error(line.decode("utf-8", "replace"))  # - error

    def _integer(self, line: bytes) -> int:
        digits = line[1:] if line[:1] == b"-" else line
        if not digits or len(digits) > _MAX_DIGITS or not _DIGITS.issuperset(digits):
            self._fail(f"bad integer {line[:32]!r}")
        return int(line)

    def _size(self, line: bytes, limit: int, what: str) -> int:
        if line == b"-1":
            return -1
        if not line or len(line) > _MAX_DIGITS or not _DIGITS.issuperset(line):
            self._fail(f"bad {what} length {line[:32]!r}")
        size = int(line)
        if size > limit:
            self._fail(f"{what} of {size} announced, more than {limit}")
        return size


_INCOMPLETE = object()
_ARRAY_STARTED = object()


if sys.implementation.name == "pypy":
    pack_command = pure_pack_command
    Reader = PureReader
else:
    pack_command = hiredis.pack_command
    Reader = hiredis.Reader
