# -*- test-case-name: tests.test_codec,tests.test_codec_properties -*-
"""FrameBuffer: split a TCP byte stream into whole CMPP frames."""

from __future__ import annotations

import struct

from cmppsvc.codec.constants import HEADER_LENGTH, MAX_PDU_LENGTH
from cmppsvc.codec.errors import CodecError

_LENGTH = struct.Struct(">I")


class FrameBuffer:
    """Accumulates received bytes and hands back whole frames (header included).

    Total_Length is checked as soon as its 4 bytes arrive, so nothing is buffered for
    a frame outside ``HEADER_LENGTH .. max_length``.  Such a length raises a fatal
    CodecError (the stream can no longer be split): drop the connection.  After that
    every further ``feed`` raises the same error.
    """

    def __init__(self, max_length: int = MAX_PDU_LENGTH) -> None:
        self._buffer = bytearray()
        self._max_length = max_length
        self._error: CodecError | None = None

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data``; return the frames now complete, in order."""
        if self._error is not None:
            raise self._error
        buffer = self._buffer
        buffer += data
        frames = []
        offset = 0
        end = len(buffer)
        while end - offset >= 4:
            (length,) = _LENGTH.unpack_from(buffer, offset)
            if length < HEADER_LENGTH or length > self._max_length:
                self._error = CodecError(
                    f"Total_Length {length} outside "
                    f"{HEADER_LENGTH}..{self._max_length}",
                    fatal=True,
                )
                buffer.clear()
                raise self._error
            if end - offset < length:
                break
            frames.append(bytes(buffer[offset : offset + length]))
            offset += length
        if offset:
            del buffer[:offset]
        return frames

    def __len__(self) -> int:
        """Bytes buffered towards the next frame."""
        return len(self._buffer)
