# -*- test-case-name: tests.test_codec,tests.test_codec_properties -*-
"""The PDU classes: one slotted attrs class per CMPP message.

Field names are the protocol's names in snake_case and follow the wire order, with
``seq`` (the Sequence_Id) after the wire fields.  Lengths and counts (Total_Length,
Msg_Length, DestUsr_tl) are not stored: the encoder derives them.  Fields that exist in
only one version are kept for both; the other version ignores them on encode and leaves
them at their default on decode.
"""

from __future__ import annotations

from typing import ClassVar

import attrs

from cmppsvc.codec import constants


@attrs.define(slots=True)
class Connect:
    """CMPP_CONNECT: the SP's login request."""

    command_id: ClassVar[int] = constants.CONNECT
    name: ClassVar[str] = "CONNECT"
    source_addr: str = ""
    authenticator_source: bytes = b""
    version: int = constants.VERSION_30
    timestamp: int = 0
    seq: int = 0


@attrs.define(slots=True)
class ConnectResp:
    """CMPP_CONNECT_RESP; ``status`` is 1 byte in 2.0 and 4 bytes in 3.0."""

    command_id: ClassVar[int] = constants.CONNECT_RESP
    name: ClassVar[str] = "CONNECT_RESP"
    status: int = 0
    authenticator_ismg: bytes = b""
    version: int = constants.VERSION_30
    seq: int = 0


@attrs.define(slots=True)
class Terminate:
    """CMPP_TERMINATE: header only."""

    command_id: ClassVar[int] = constants.TERMINATE
    name: ClassVar[str] = "TERMINATE"
    seq: int = 0


@attrs.define(slots=True)
class TerminateResp:
    """CMPP_TERMINATE_RESP: header only."""

    command_id: ClassVar[int] = constants.TERMINATE_RESP
    name: ClassVar[str] = "TERMINATE_RESP"
    seq: int = 0


@attrs.define(slots=True)
class ActiveTest:
    """CMPP_ACTIVE_TEST (heartbeat): header only."""

    command_id: ClassVar[int] = constants.ACTIVE_TEST
    name: ClassVar[str] = "ACTIVE_TEST"
    seq: int = 0


@attrs.define(slots=True)
class ActiveTestResp:
    """CMPP_ACTIVE_TEST_RESP: one Reserved byte in both versions."""

    command_id: ClassVar[int] = constants.ACTIVE_TEST_RESP
    name: ClassVar[str] = "ACTIVE_TEST_RESP"
    seq: int = 0
    reserved: int = 0


@attrs.define(slots=True)
class Submit:
    """CMPP_SUBMIT: one MT message (or one segment of a long one)."""

    command_id: ClassVar[int] = constants.SUBMIT
    name: ClassVar[str] = "SUBMIT"
    msg_id: int = 0
    pk_total: int = 1
    pk_number: int = 1
    registered_delivery: int = 1
    msg_level: int = 0
    service_id: str = ""
    fee_user_type: int = 2
    fee_terminal_id: str = ""
    fee_terminal_type: int = 0
    tp_pid: int = 0
    tp_udhi: int = 0
    msg_fmt: int = 8
    msg_src: str = ""
    fee_type: str = "01"
    fee_code: str = "000000"
    valid_time: str = ""
    at_time: str = ""
    src_id: str = ""
    dest_terminal_ids: tuple[str, ...] = ()
    dest_terminal_type: int = 0
    msg_content: bytes = b""
    link_id: str = ""
    seq: int = 0


@attrs.define(slots=True)
class SubmitResp:
    """CMPP_SUBMIT_RESP; ``result`` is 1 byte in 2.0 and 4 bytes in 3.0."""

    command_id: ClassVar[int] = constants.SUBMIT_RESP
    name: ClassVar[str] = "SUBMIT_RESP"
    msg_id: int = 0
    result: int = 0
    seq: int = 0


@attrs.define(slots=True)
class StatusReport:
    """The status report carried in a DELIVER's Msg_Content (Registered_Delivery 1).

    ``msg_id`` is the Msg_Id of the SUBMIT_RESP being reported: the matching key.
    """

    msg_id: int = 0
    stat: str = ""
    submit_time: str = ""
    done_time: str = ""
    dest_terminal_id: str = ""
    smsc_sequence: int = 0


@attrs.define(slots=True)
class Deliver:
    """CMPP_DELIVER: an MO message, or a status report when registered_delivery == 1.

    On decode ``report`` is parsed from ``msg_content`` (which is kept).  On encode a
    non-empty ``msg_content`` is sent as is; an empty one with a ``report`` is filled
    with the report in the version's layout.
    """

    command_id: ClassVar[int] = constants.DELIVER
    name: ClassVar[str] = "DELIVER"
    msg_id: int = 0
    dest_id: str = ""
    service_id: str = ""
    tp_pid: int = 0
    tp_udhi: int = 0
    msg_fmt: int = 0
    src_terminal_id: str = ""
    src_terminal_type: int = 0
    registered_delivery: int = 0
    msg_content: bytes = b""
    link_id: str = ""
    seq: int = 0
    report: StatusReport | None = None


@attrs.define(slots=True)
class DeliverResp:
    """CMPP_DELIVER_RESP; ``result`` is 1 byte in 2.0 and 4 bytes in 3.0."""

    command_id: ClassVar[int] = constants.DELIVER_RESP
    name: ClassVar[str] = "DELIVER_RESP"
    msg_id: int = 0
    result: int = 0
    seq: int = 0


@attrs.define(slots=True)
class Query:
    """CMPP_QUERY: statistics request; ``time`` is YYYYMMDD."""

    command_id: ClassVar[int] = constants.QUERY
    name: ClassVar[str] = "QUERY"
    time: str = ""
    query_type: int = 0
    query_code: str = ""
    reserve: str = ""
    seq: int = 0


@attrs.define(slots=True)
class QueryResp:
    """CMPP_QUERY_RESP: the eight MT/MO counters (same layout in 2.0 and 3.0)."""

    command_id: ClassVar[int] = constants.QUERY_RESP
    name: ClassVar[str] = "QUERY_RESP"
    time: str = ""
    query_type: int = 0
    query_code: str = ""
    mt_tlmsg: int = 0
    mt_tlusr: int = 0
    mt_scs: int = 0
    mt_wt: int = 0
    mt_fl: int = 0
    mo_scs: int = 0
    mo_wt: int = 0
    mo_fl: int = 0
    seq: int = 0


@attrs.define(slots=True)
class Cancel:
    """CMPP_CANCEL: cancel a not yet delivered message by Msg_Id."""

    command_id: ClassVar[int] = constants.CANCEL
    name: ClassVar[str] = "CANCEL"
    msg_id: int = 0
    seq: int = 0


@attrs.define(slots=True)
class CancelResp:
    """CMPP_CANCEL_RESP; ``success_id`` (0 ok, 1 failed) is 1 byte in 2.0, 4 in 3.0."""

    command_id: ClassVar[int] = constants.CANCEL_RESP
    name: ClassVar[str] = "CANCEL_RESP"
    success_id: int = 0
    seq: int = 0


@attrs.define(slots=True)
class Fwd:
    """CMPP_FWD (ISMG to ISMG).  The pseudo/user-type fields exist only in 3.0."""

    command_id: ClassVar[int] = constants.FWD
    name: ClassVar[str] = "FWD"
    source_id: str = ""
    destination_id: str = ""
    nodes_count: int = 0
    msg_fwd_type: int = 0
    msg_id: int = 0
    pk_total: int = 1
    pk_number: int = 1
    registered_delivery: int = 0
    msg_level: int = 0
    service_id: str = ""
    fee_user_type: int = 0
    fee_terminal_id: str = ""
    fee_terminal_pseudo: str = ""
    fee_terminal_user_type: int = 0
    tp_pid: int = 0
    tp_udhi: int = 0
    msg_fmt: int = 0
    msg_src: str = ""
    fee_type: str = ""
    fee_code: str = ""
    valid_time: str = ""
    at_time: str = ""
    src_id: str = ""
    src_pseudo: str = ""
    src_user_type: int = 0
    src_type: int = 0
    dest_ids: tuple[str, ...] = ()
    dest_pseudo: str = ""
    dest_user_type: int = 0
    msg_content: bytes = b""
    link_id: str = ""
    seq: int = 0


@attrs.define(slots=True)
class FwdResp:
    """CMPP_FWD_RESP; ``result`` is 1 byte in 2.0 and 4 bytes in 3.0."""

    command_id: ClassVar[int] = constants.FWD_RESP
    name: ClassVar[str] = "FWD_RESP"
    msg_id: int = 0
    pk_total: int = 1
    pk_number: int = 1
    result: int = 0
    seq: int = 0
