# -*- test-case-name: tests.test_simulator_protocol -*-
"""Precompiled layouts for the simulator's hot path: SUBMIT in, responses out.

The codec decodes every field into an object; a gateway answering tens of
thousands of SUBMITs a second reads only what it needs (Sequence_Id,
Registered_Delivery, the destinations) straight from the received bytes and
packs its answers with precompiled structs. Offsets are those of reference
section 3.1 (relative to the body, after the 12-byte header).
"""

import struct
from collections.abc import Callable

import attrs

from cmppsvc.codec.constants import DELIVER

HEADER = struct.Struct(">III")
SEQ_OFFSET = 8  # Sequence_Id, after Total_Length and Command_Id

# Registered_Delivery sits after Msg_Id (8), Pk_total and Pk_number.
REGISTERED_DELIVERY_OFFSET = 10
SERVICE_ID_OFFSET = 12
SERVICE_ID_SIZE = 10
SOURCE_ID_SIZE = 21

TIME_FORMAT = "%y%m%d%H%M"


REPORT_20 = struct.Struct(">IIIQ21s10sBBB21sBBQ7s10s10s21sI8s")
"""A whole 2.0 DELIVER carrying a report: header, Msg_Id, Dest_Id, Service_Id,
TP_pid, TP_udhi, Msg_Fmt, Src_terminal_Id, Registered_Delivery, Msg_Length, the
60-byte report (Msg_Id, Stat, Submit_time, Done_time, Dest_terminal_Id,
SMSC_sequence) and Reserve."""

REPORT_30 = struct.Struct(">IIIQ21s10sBBB32sBBBQ7s10s10s32sI20s")
"""The same in 3.0: 32-byte terminal ids, Src_terminal_type after
Src_terminal_Id, a 71-byte report and a 20-byte LinkID."""

ReportPacker = Callable[
    [int, int, bytes, bytes, bytes, int, bytes, bytes, bytes, int], bytes
]
"""(seq, deliver_msg_id, source_id, service_id, terminal, report_msg_id, stat,
submit_time, done_time, smsc_sequence) -> one whole report DELIVER frame.
``terminal`` is the destination exactly as the SUBMIT carried it; it goes both
into Src_terminal_Id and into the report's Dest_terminal_Id."""


def _pack_report_20(
    seq: int, deliver_msg_id: int, source_id: bytes, service_id: bytes,
    terminal: bytes, report_msg_id: int, stat: bytes, submit_time: bytes,
    done_time: bytes, smsc_sequence: int,
) -> bytes:  # fmt: skip
    return REPORT_20.pack(
        REPORT_20.size, DELIVER, seq, deliver_msg_id, source_id, service_id,
        0, 0, 0, terminal, 1, 60, report_msg_id, stat, submit_time,
        done_time, terminal, smsc_sequence, b"",
    )  # fmt: skip


def _pack_report_30(
    seq: int, deliver_msg_id: int, source_id: bytes, service_id: bytes,
    terminal: bytes, report_msg_id: int, stat: bytes, submit_time: bytes,
    done_time: bytes, smsc_sequence: int,
) -> bytes:  # fmt: skip
    return REPORT_30.pack(
        REPORT_30.size, DELIVER, seq, deliver_msg_id, source_id, service_id,
        0, 0, 0, terminal, 0, 1, 71, report_msg_id, stat, submit_time,
        done_time, terminal, smsc_sequence, b"",
    )  # fmt: skip


@attrs.frozen
class Layout:
    """Where one CMPP version keeps the SUBMIT fields the simulator reads, and
    how it packs SUBMIT_RESP and status-report DELIVERs."""

    terminal_size: int  # Dest_terminal_Id / Src_terminal_Id: 21 (2.0) or 32 (3.0)
    source_id_offset: int  # Src_Id
    count_offset: int  # DestUsr_tl; the destinations follow it
    after_destinations: int  # bytes between the last destination and Msg_Length
    fixed_size: int  # body size without destinations and content
    submit_resp: struct.Struct
    deliver_resp_size: int
    deliver_resp_accepted: bytes  # DELIVER_RESP's last field, Result 0
    pack_report: ReportPacker

    def message_length_offset(self, count: int) -> int:
        """Body offset of Msg_Length for ``count`` destinations."""
        return (
            self.count_offset
            + 1
            + self.terminal_size * count
            + (self.after_destinations)
        )


LAYOUT_20 = Layout(
    terminal_size=21,
    source_id_offset=95,
    count_offset=116,
    after_destinations=0,
    fixed_size=126,
    submit_resp=struct.Struct(">IIIQB"),
    deliver_resp_size=21,
    deliver_resp_accepted=bytes(1),
    pack_report=_pack_report_20,
)

LAYOUT_30 = Layout(
    terminal_size=32,
    source_id_offset=107,
    count_offset=128,
    after_destinations=1,  # Dest_terminal_type
    fixed_size=151,
    submit_resp=struct.Struct(">IIIQI"),
    deliver_resp_size=24,
    deliver_resp_accepted=bytes(4),
    pack_report=_pack_report_30,
)


def layout_for(version: int) -> Layout:
    """The layout of a version: 0x30 and above read as 3.0, the rest as 2.0."""
    return LAYOUT_30 if version >= 0x30 else LAYOUT_20
