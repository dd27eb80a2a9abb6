# -*- test-case-name: tests.test_outbound -*-
"""What an MT entry becomes before it is sent: its parts.

An entry is one SUBMIT per destination and segment, a ``Part``; while any part
of it has no outcome yet, the entry is a ``PendingMessage``. The concatenation
reference of a long message is derived from the entry id, so a segment resent
after a restart still joins the segments sent before it.
"""

from __future__ import annotations

import zlib

from cmppsvc.codec import Submit
from cmppsvc.configschema import ChannelConfig
from cmppsvc.mtmessage import MTMessage


def concatenation_reference(entry_id: str) -> int:
    """The long-message reference of an entry: the same after a restart."""
    return zlib.crc32(entry_id.encode("utf-8")) & 0xFFFF


class Part:
    """One SUBMIT of an entry: a destination and a segment."""

    __slots__ = (
        "index",
        "destination",
        "pdu",
        "resend",
        "seq",
        "record_text",
        "handed",
    )

    def __init__(self, index: int, destination: str, pdu: Submit) -> None:
        self.index = index
        self.destination = destination
        self.pdu = pdu
        self.resend = False
        self.seq: int | None = None
        # The intended record as JSON: the sent record is this plus the
        # Sequence_Id and send time.
        self.record_text = ""
        # Recorded and handed to the connector, not written to a connection
        # yet (``OutboundFlow`` keeps few such parts: see its docstring).
        self.handed = False


class PendingMessage:
    """An MT entry whose parts do not all have outcomes yet."""

    __slots__ = ("message", "parts", "parts_left")

    def __init__(self, message: MTMessage, parts: int) -> None:
        self.message = message
        self.parts = parts
        self.parts_left = parts


def build_parts(
    config: ChannelConfig, message: MTMessage, segments: list
) -> list[Part]:
    """One SUBMIT per destination and segment, in that order, each a ``Part``
    numbered from 0 (the index its in-flight record is kept under)."""
    source = config.number + message.extension
    parts = []
    for destination in message.destinations:
        for segment in segments:
            pdu = Submit(
                pk_total=segment.pk_total,
                pk_number=segment.pk_number,
                registered_delivery=1 if config.reports_wanted else 0,
                msg_level=config.msg_level,
                service_id=config.service_id,
                fee_user_type=config.fee_user_type,
                tp_udhi=segment.tp_udhi,
                msg_fmt=segment.msg_fmt,
                msg_src=config.corp_id,
                fee_type=config.fee_type,
                fee_code=config.fee_code,
                src_id=source,
                dest_terminal_ids=(destination,),
                msg_content=segment.content,
            )
            parts.append(Part(len(parts), destination, pdu))
    return parts
