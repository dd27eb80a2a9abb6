# -*- test-case-name: tests.test_codec,tests.test_codec_properties -*-
"""The one error type the codec raises, and its "skip this PDU" subclass."""

from __future__ import annotations


class CodecError(ValueError):
    """Bytes that cannot be framed, decoded or encoded.

    ``fatal`` is True when the framing itself is broken (the byte stream can no longer
    be split into PDUs, so the connection must be dropped) and False when only this one
    PDU is bad and the caller may skip it.  ``seq`` and ``command_id`` are filled in
    whenever the header could be read, so the caller can log or answer what it skips.
    """

    def __init__(
        self,
        message: str,
        fatal: bool = False,
        seq: int | None = None,
        command_id: int | None = None,
    ) -> None:
        super().__init__(message)
        self.fatal = fatal
        self.seq = seq
        self.command_id = command_id


class UnknownCommand(CodecError):  # noqa: N818 (public name fixed by contract)
    """A well-framed PDU whose Command_Id this codec does not know: skip it."""

    def __init__(self, command_id: int, seq: int, length: int) -> None:
        super().__init__(
            f"unknown Command_Id 0x{command_id:08x} (Sequence_Id {seq}, "
            f"Total_Length {length}): skipped",
            fatal=False,
            seq=seq,
            command_id=command_id,
        )
