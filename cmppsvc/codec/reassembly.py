# -*- test-case-name: tests.test_codec_longsms -*-
"""Reassembly of long MO messages from DELIVER segments (reference 8.2).

A pure class: it keeps no clock and is given ``now`` (seconds, any epoch) on every
call, so the caller drives it from its reactor's clock and tests need no time at all.
Segments are grouped by (Src_terminal_Id, Dest_Id, reference, total); they may arrive
in any order, more than once (the first copy wins), with the 8- or 16-bit reference
and with other UDH elements around the concatenation element.  A group that does not
complete within ``timeout`` seconds of its first segment is handed back by ``expire``
with what arrived, marked incomplete.
"""

from __future__ import annotations

from collections import OrderedDict

import attrs

from cmppsvc.codec.errors import CodecError
from cmppsvc.codec.pdus import Deliver
from cmppsvc.codec.text import decode_text
from cmppsvc.codec.udh import find_concatenation, has_udh, split_udh

DEFAULT_TIMEOUT = 2 * 3600.0
"""Seconds an incomplete group is kept (SMSGate keeps them two hours)."""

DEFAULT_MAX_GROUPS = 10000
"""Incomplete groups kept at most; beyond it the oldest is expired early."""


@attrs.define(slots=True)
class MoMessage:
    """A whole MO message, or what arrived of one that expired.

    ``content`` is the joined payload without UDH; ``text`` its decoded form (bytes for
    binary Msg_Fmt).  ``received`` and ``total`` count segments; ``missing`` lists the
    absent 1-based segment numbers.
    """

    src_terminal_id: str
    dest_id: str
    msg_fmt: int
    content: bytes
    text: str | bytes
    link_id: str
    complete: bool
    received: int
    total: int
    reference: int | None = None
    missing: tuple[int, ...] = ()


@attrs.define(slots=True)
class _Group:
    first_seen: float
    total: int
    reference: int
    link_id: str
    parts: dict[int, tuple[bytes, int]] = attrs.field(factory=dict)


def _join(parts: list[tuple[bytes, int]]) -> tuple[bytes, str | bytes, int]:
    """Joined content, its text, and the Msg_Fmt of the first part."""
    content = b"".join(payload for payload, _fmt in parts)
    formats = {msg_fmt for _payload, msg_fmt in parts}
    first = parts[0][1]
    if len(formats) == 1:
        return content, decode_text(content, first), first
    # Mixed formats: each part decodes on its own; binary parts are shown as hex.
    pieces = []
    for payload, msg_fmt in parts:
        piece = decode_text(payload, msg_fmt)
        pieces.append(piece if isinstance(piece, str) else piece.hex())
    return content, "".join(pieces), first


class Reassembler:
    """Collects DELIVER segments into whole MO messages."""

    def __init__(
        self, timeout: float = DEFAULT_TIMEOUT, max_groups: int = DEFAULT_MAX_GROUPS
    ) -> None:
        self.timeout = timeout
        self.max_groups = max_groups
        self._groups: OrderedDict[tuple, _Group] = OrderedDict()
        self._evicted: list[MoMessage] = []

    def __len__(self) -> int:
        """Incomplete groups held."""
        return len(self._groups)

    def add(self, deliver: Deliver, now: float) -> MoMessage | None:
        """Take one MO DELIVER; return the whole message once it is complete.

        A DELIVER without a concatenation element is a whole message by itself (its
        UDH, if any, is stripped).  Raises a non-fatal CodecError for a malformed UDH
        or a segment number outside 1..total.
        """
        content = deliver.msg_content
        if not has_udh(deliver.tp_udhi):
            return self._single(deliver, content)
        elements, payload = split_udh(content)
        concatenation = find_concatenation(elements)
        if concatenation is None or concatenation.total <= 1:
            return self._single(deliver, payload)
        reference, total, number, _wide = concatenation
        if not 1 <= number <= total:
            raise CodecError(
                f"DELIVER long message segment {number} outside 1..{total} "
                f"(reference {reference})"
            )

        key = (deliver.src_terminal_id, deliver.dest_id, reference, total)
        group = self._groups.get(key)
        if group is None:
            if len(self._groups) >= self.max_groups:
                _key, oldest = self._groups.popitem(last=False)
                self._evicted.append(self._partial(_key, oldest))
            group = self._groups[key] = _Group(now, total, reference, deliver.link_id)
        group.parts.setdefault(number, (payload, deliver.msg_fmt))
        if len(group.parts) < total:
            return None

        del self._groups[key]
        parts = [group.parts[index] for index in range(1, total + 1)]
        joined, text, msg_fmt = _join(parts)
        return MoMessage(
            deliver.src_terminal_id,
            deliver.dest_id,
            msg_fmt,
            joined,
            text,
            group.link_id,
            True,
            total,
            total,
            reference,
        )

    def expire(self, now: float) -> list[MoMessage]:
        """Remove and return the groups older than ``timeout`` (and any evicted early),
        as incomplete messages holding the segments that arrived."""
        expired, self._evicted = self._evicted, []
        while self._groups:
            key, group = next(iter(self._groups.items()))
            if group.first_seen + self.timeout > now:
                break
            del self._groups[key]
            expired.append(self._partial(key, group))
        return expired

    def _single(self, deliver: Deliver, payload: bytes) -> MoMessage:
        text = decode_text(payload, deliver.msg_fmt)
        return MoMessage(
            deliver.src_terminal_id,
            deliver.dest_id,
            deliver.msg_fmt,
            payload,
            text,
            deliver.link_id,
            True,
            1,
            1,
        )

    @staticmethod
    def _partial(key: tuple, group: _Group) -> MoMessage:
        src, dest, reference, total = key
        numbers = sorted(group.parts)
        joined, text, msg_fmt = _join([group.parts[number] for number in numbers])
        missing = tuple(n for n in range(1, total + 1) if n not in group.parts)
        return MoMessage(
            src,
            dest,
            msg_fmt,
            joined,
            text,
            group.link_id,
            False,
            len(numbers),
            total,
            reference,
            missing,
        )
