# -*- test-case-name: tests.test_simulator_parts -*-
"""DELIVER PDUs the simulator injects: MO messages (long ones split with a UDH)
and status reports with a chosen Stat.

The split here is the simulator's own, deliberately independent of the codec's
``longsms``: the client's reassembly is tested against a second implementation.
"""

from __future__ import annotations

import time

from cmppsvc.codec import Deliver, StatusReport
from cmppsvc.codec.text import MSG_FMT_UCS2, encode_text

SINGLE_LIMIT = 140  # Msg_Length of one SMS
SEGMENT_LIMIT = 134  # 140 minus the 6-byte UDH 05 00 03 RR TT NN


def split_mo(text: str | bytes, msg_fmt: int, reference: int) -> list[bytes]:
    """Msg_Content of each segment: one plain content if it fits one SMS,
    otherwise segments starting with an 8-bit-reference concatenation UDH.

    Text is cut between characters (never inside a UCS2 surrogate pair or a
    GBK character); bytes are cut every 134 bytes.
    """
    whole = encode_text(text, msg_fmt)
    if len(whole) <= SINGLE_LIMIT:
        return [whole]

    if isinstance(text, bytes):
        pieces = [
            text[start : start + SEGMENT_LIMIT]
            for start in range(0, len(text), SEGMENT_LIMIT)
        ]
    else:
        pieces = []
        current = b""
        for character in text:
            encoded = encode_text(character, msg_fmt)
            if len(current) + len(encoded) > SEGMENT_LIMIT:
                pieces.append(current)
                current = b""
            current += encoded
        pieces.append(current)

    if len(pieces) > 255:
        raise ValueError(f"MO of {len(whole)} bytes needs more than 255 segments")
    total = len(pieces)
    return [
        bytes([5, 0, 3, reference & 0xFF, total, number]) + piece
        for number, piece in enumerate(pieces, start=1)
    ]


def mo_delivers(
    msg_ids: list[int],
    contents: list[bytes],
    src_terminal_id: str,
    dest_id: str,
    msg_fmt: int = MSG_FMT_UCS2,
    service_id: str = "",
    link_id: str = "",
) -> list[Deliver]:
    """One MO DELIVER per segment content; TP_udhi is set when there are several."""
    udhi = 1 if len(contents) > 1 else 0
    return [
        Deliver(
            msg_id=msg_id,
            dest_id=dest_id,
            service_id=service_id,
            tp_udhi=udhi,
            msg_fmt=msg_fmt,
            src_terminal_id=src_terminal_id,
            registered_delivery=0,
            msg_content=content,
            link_id=link_id,
        )
        for msg_id, content in zip(msg_ids, contents)
    ]


def report_deliver(
    deliver_msg_id: int,
    report_msg_id: int,
    dest_terminal_id: str,
    stat: str,
    submitted_at: float,
    done_at: float,
    dest_id: str = "",
    service_id: str = "",
) -> Deliver:
    """A status-report DELIVER for ``report_msg_id`` (a SUBMIT_RESP's Msg_Id)."""
    return Deliver(
        msg_id=deliver_msg_id,
        dest_id=dest_id,
        service_id=service_id,
        src_terminal_id=dest_terminal_id,
        registered_delivery=1,
        report=StatusReport(
            msg_id=report_msg_id,
            stat=stat,
            submit_time=time.strftime("%y%m%d%H%M", time.localtime(submitted_at)),
            done_time=time.strftime("%y%m%d%H%M", time.localtime(done_at)),
            dest_terminal_id=dest_terminal_id,
            smsc_sequence=deliver_msg_id & 0xFFFFFFFF,
        ),
    )
