# -*- test-case-name: tests.test_codec,tests.test_codec_properties -*-
"""Wire layouts of every PDU body in 2.0 and 3.0, as data.

Each layout is a tuple of items ``(kind, wire_name, attribute, size)`` in wire order.
Kinds:

* ``u8``, ``u32``, ``u64``: unsigned big-endian integers.
* ``text``: an Octet String of ``size`` bytes (see ``octets``).
* ``raw``: ``size`` bytes kept as bytes (authenticators).
* ``zeros``: ``size`` reserved bytes, sent as zeros, not stored.
* ``dests``: DestUsr_tl (1 byte) then that many ``size``-byte Octet Strings.
* ``content``: Msg_Length (1 byte) then that many bytes.
* ``tail_text``: the last field (LinkID); sent padded to ``size``, read as whatever
  bytes remain, because real gateways send it short (reference 4.2).
* ``tail_zeros``: the last reserved field; sent as ``size`` zeros, ignored on read.

``schema.py`` interprets these tables; ``fast.py`` holds hand-flattened versions of the
hot ones, and the tests check that both agree.
"""

from __future__ import annotations

from cmppsvc.codec import constants as c

U8, U32, U64, TEXT, RAW, ZEROS = "u8", "u32", "u64", "text", "raw", "zeros"
DESTS, CONTENT, TAIL_TEXT, TAIL_ZEROS = "dests", "content", "tail_text", "tail_zeros"

FIXED_SIZE = {U8: 1, U32: 4, U64: 8}

_CONNECT = (
    (TEXT, "Source_Addr", "source_addr", 6),
    (RAW, "AuthenticatorSource", "authenticator_source", 16),
    (U8, "Version", "version", 1),
    (U32, "Timestamp", "timestamp", 4),
)


def _connect_resp(status: str) -> tuple:
    return (
        (status, "Status", "status", FIXED_SIZE[status]),
        (RAW, "AuthenticatorISMG", "authenticator_ismg", 16),
        (U8, "Version", "version", 1),
    )


def _msg_id_result(result: str) -> tuple:
    return (
        (U64, "Msg_Id", "msg_id", 8),
        (result, "Result", "result", FIXED_SIZE[result]),
    )


def _submit(v30: bool) -> tuple:
    number = 32 if v30 else 21
    items = [
        (U64, "Msg_Id", "msg_id", 8),
        (U8, "Pk_total", "pk_total", 1),
        (U8, "Pk_number", "pk_number", 1),
        (U8, "Registered_Delivery", "registered_delivery", 1),
        (U8, "Msg_level", "msg_level", 1),
        (TEXT, "Service_Id", "service_id", 10),
        (U8, "Fee_UserType", "fee_user_type", 1),
        (TEXT, "Fee_terminal_Id", "fee_terminal_id", number),
    ]
    if v30:
        items.append((U8, "Fee_terminal_type", "fee_terminal_type", 1))
    items += [
        (U8, "TP_pId", "tp_pid", 1),
        (U8, "TP_udhi", "tp_udhi", 1),
        (U8, "Msg_Fmt", "msg_fmt", 1),
        (TEXT, "Msg_src", "msg_src", 6),
        (TEXT, "FeeType", "fee_type", 2),
        (TEXT, "FeeCode", "fee_code", 6),
        (TEXT, "ValId_Time", "valid_time", 17),
        (TEXT, "At_Time", "at_time", 17),
        (TEXT, "Src_Id", "src_id", 21),
        (DESTS, "Dest_terminal_Id", "dest_terminal_ids", number),
    ]
    if v30:
        items.append((U8, "Dest_terminal_type", "dest_terminal_type", 1))
    items.append((CONTENT, "Msg_Content", "msg_content", 0))
    if v30:
        items.append((TAIL_TEXT, "LinkID", "link_id", 20))
    else:
        items.append((TAIL_ZEROS, "Reserve", "", 8))
    return tuple(items)


def _deliver(v30: bool) -> tuple:
    items = [
        (U64, "Msg_Id", "msg_id", 8),
        (TEXT, "Dest_Id", "dest_id", 21),
        (TEXT, "Service_Id", "service_id", 10),
        (U8, "TP_pid", "tp_pid", 1),
        (U8, "TP_udhi", "tp_udhi", 1),
        (U8, "Msg_Fmt", "msg_fmt", 1),
        (TEXT, "Src_terminal_Id", "src_terminal_id", 32 if v30 else 21),
    ]
    if v30:
        items.append((U8, "Src_terminal_type", "src_terminal_type", 1))
    items += [
        (U8, "Registered_Delivery", "registered_delivery", 1),
        (CONTENT, "Msg_Content", "msg_content", 0),
    ]
    if v30:
        items.append((TAIL_TEXT, "LinkID", "link_id", 20))
    else:
        items.append((TAIL_ZEROS, "Reserved", "", 8))
    return tuple(items)


def report_layout(v30: bool) -> tuple:
    """The status report inside a DELIVER: 60 bytes (2.0) or 71 bytes (3.0)."""
    return (
        (U64, "Msg_Id", "msg_id", 8),
        (TEXT, "Stat", "stat", 7),
        (TEXT, "Submit_time", "submit_time", 10),
        (TEXT, "Done_time", "done_time", 10),
        (TEXT, "Dest_terminal_Id", "dest_terminal_id", 32 if v30 else 21),
        (U32, "SMSC_sequence", "smsc_sequence", 4),
    )


_QUERY = (
    (TEXT, "Time", "time", 8),
    (U8, "Query_Type", "query_type", 1),
    (TEXT, "Query_Code", "query_code", 10),
    (TEXT, "Reserve", "reserve", 8),
)

_QUERY_RESP = (
    (TEXT, "Time", "time", 8),
    (U8, "Query_Type", "query_type", 1),
    (TEXT, "Query_Code", "query_code", 10),
    (U32, "MT_TLMsg", "mt_tlmsg", 4),
    (U32, "MT_Tlusr", "mt_tlusr", 4),
    (U32, "MT_Scs", "mt_scs", 4),
    (U32, "MT_WT", "mt_wt", 4),
    (U32, "MT_FL", "mt_fl", 4),
    (U32, "MO_Scs", "mo_scs", 4),
    (U32, "MO_WT", "mo_wt", 4),
    (U32, "MO_FL", "mo_fl", 4),
)


def _fwd(v30: bool) -> tuple:
    items = [
        (TEXT, "Source_Id", "source_id", 6),
        (TEXT, "Destination_Id", "destination_id", 6),
        (U8, "NodesCount", "nodes_count", 1),
        (U8, "Msg_Fwd_Type", "msg_fwd_type", 1),
        (U64, "Msg_Id", "msg_id", 8),
        (U8, "Pk_total", "pk_total", 1),
        (U8, "Pk_number", "pk_number", 1),
        (U8, "Registered_Delivery", "registered_delivery", 1),
        (U8, "Msg_level", "msg_level", 1),
        (TEXT, "Service_Id", "service_id", 10),
        (U8, "Fee_UserType", "fee_user_type", 1),
        (TEXT, "Fee_terminal_Id", "fee_terminal_id", 21),
    ]
    if v30:
        items += [
            (TEXT, "Fee_terminal_Pseudo", "fee_terminal_pseudo", 32),
            (U8, "Fee_terminal_UserType", "fee_terminal_user_type", 1),
        ]
    items += [
        (U8, "TP_pid", "tp_pid", 1),
        (U8, "TP_udhi", "tp_udhi", 1),
        (U8, "Msg_Fmt", "msg_fmt", 1),
        (TEXT, "Msg_src", "msg_src", 6),
        (TEXT, "FeeType", "fee_type", 2),
        (TEXT, "FeeCode", "fee_code", 6),
        (TEXT, "Valid_Time", "valid_time", 17),
        (TEXT, "At_Time", "at_time", 17),
        (TEXT, "Src_Id", "src_id", 21),
    ]
    if v30:
        items += [
            (TEXT, "Src_Pseudo", "src_pseudo", 32),
            (U8, "Src_UserType", "src_user_type", 1),
            (U8, "Src_type", "src_type", 1),
        ]
    items.append((DESTS, "Dest_Id", "dest_ids", 21))
    if v30:
        items += [
            (TEXT, "Dest_Pseudo", "dest_pseudo", 32),
            (U8, "Dest_UserType", "dest_user_type", 1),
        ]
    items.append((CONTENT, "Msg_Content", "msg_content", 0))
    if v30:
        items.append((TAIL_TEXT, "LinkID", "link_id", 20))
    else:
        items.append((TAIL_ZEROS, "Reserve", "", 8))
    return tuple(items)


def _fwd_resp(result: str) -> tuple:
    return (
        (U64, "Msg_Id", "msg_id", 8),
        (U8, "Pk_total", "pk_total", 1),
        (U8, "Pk_number", "pk_number", 1),
        (result, "Result", "result", FIXED_SIZE[result]),
    )


def layouts(v30: bool) -> dict[int, tuple]:
    """Command_Id -> body layout for one version (responses in that version's form)."""
    status = U32 if v30 else U8
    return {
        c.CONNECT: _CONNECT,
        c.CONNECT_RESP: _connect_resp(status),
        c.TERMINATE: (),
        c.TERMINATE_RESP: (),
        c.SUBMIT: _submit(v30),
        c.SUBMIT_RESP: _msg_id_result(status),
        c.DELIVER: _deliver(v30),
        c.DELIVER_RESP: _msg_id_result(status),
        c.QUERY: _QUERY,
        c.QUERY_RESP: _QUERY_RESP,
        c.CANCEL: ((U64, "Msg_Id", "msg_id", 8),),
        c.CANCEL_RESP: ((status, "Success_Id", "success_id", FIXED_SIZE[status]),),
        c.ACTIVE_TEST: (),
        c.ACTIVE_TEST_RESP: ((U8, "Reserved", "reserved", 1),),
        c.FWD: _fwd(v30),
        c.FWD_RESP: _fwd_resp(status),
    }


LAYOUTS_20 = layouts(False)
LAYOUTS_30 = layouts(True)

RESPONSES_BY_LENGTH = (
    c.CONNECT_RESP,
    c.SUBMIT_RESP,
    c.DELIVER_RESP,
    c.CANCEL_RESP,
    c.FWD_RESP,
)
"""Responses whose layout is chosen by body length, not by the negotiated version."""


def fixed_length(layout: tuple) -> int:
    """Body bytes of a layout without destinations, content and tail."""
    total = 0
    for kind, _wire, _attr, size in layout:
        if kind in (DESTS, CONTENT):
            total += 1
        elif kind not in (TAIL_TEXT, TAIL_ZEROS):
            total += size
    return total
