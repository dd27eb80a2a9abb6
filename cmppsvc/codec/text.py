# -*- test-case-name: tests.test_codec,tests.test_codec_longsms -*-
"""Message text by Msg_Fmt: 0 ASCII, 8 UCS2 (UTF-16BE, no BOM), 15 GB Chinese.

Any other Msg_Fmt (3 SIM-card write, 4 binary, 9, vendor values) is kept as bytes.
"""

from __future__ import annotations

MSG_FMT_ASCII = 0
MSG_FMT_SIM = 3
MSG_FMT_BINARY = 4
MSG_FMT_UCS2 = 8
MSG_FMT_GBK = 15

TEXT_FORMATS = (MSG_FMT_ASCII, MSG_FMT_UCS2, MSG_FMT_GBK)
"""The Msg_Fmt values whose content is text."""


def choose_msg_fmt(text: str, allow_gbk: bool = False) -> int:
    """The Msg_Fmt for ``text``: 0 for ASCII-only text, otherwise 8 (UCS2), or 15 (GBK)
    when ``allow_gbk`` is asked for and the text is GBK-encodable."""
    if text.isascii():
        return MSG_FMT_ASCII
    if allow_gbk:
        try:
            text.encode("gbk")
        except UnicodeEncodeError:
            return MSG_FMT_UCS2
        return MSG_FMT_GBK
    return MSG_FMT_UCS2


def encode_text(text: str | bytes, msg_fmt: int) -> bytes:
    """Msg_Content bytes of ``text`` in ``msg_fmt``; bytes pass through unchanged.

    Raises UnicodeEncodeError when the text has characters the format cannot carry,
    and TypeError for text with a binary Msg_Fmt.
    """
    if isinstance(text, bytes):
        return text
    if msg_fmt == MSG_FMT_UCS2:
        return text.encode("utf-16-be")
    if msg_fmt == MSG_FMT_ASCII:
        return text.encode("ascii")
    if msg_fmt == MSG_FMT_GBK:
        return text.encode("gbk")
    raise TypeError(f"Msg_Fmt {msg_fmt} carries bytes, not text")


def decode_text(content: bytes, msg_fmt: int) -> str | bytes:
    """The text of ``content`` for Msg_Fmt 0, 8 and 15 (undecodable bytes replaced);
    the bytes themselves for any other Msg_Fmt."""
    if msg_fmt == MSG_FMT_UCS2:
        return content.decode("utf-16-be", "replace")
    if msg_fmt == MSG_FMT_ASCII:
        try:
            return content.decode("ascii")
        except UnicodeDecodeError:
            # Handsets and gateways sometimes put Latin-1 in an "ASCII" message.
            return content.decode("latin-1")
    if msg_fmt == MSG_FMT_GBK:
        return content.decode("gb18030", "replace")
    return bytes(content)
