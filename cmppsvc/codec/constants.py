# -*- test-case-name: tests.test_codec -*-
"""Protocol constants: versions, header size, frame bound and Command_Id values."""

from __future__ import annotations

VERSION_20 = 0x20
"""CMPP 2.0; 2.1 (0x21) and any version below 0x30 use the same wire layout."""

VERSION_30 = 0x30
"""CMPP 3.0; any version at or above 0x30 is read with the 3.0 layout."""

HEADER_LENGTH = 12
"""Total_Length, Command_Id and Sequence_Id, 4 bytes each."""

MAX_PDU_LENGTH = 4096
"""Largest Total_Length accepted.  The largest legal PDU (a 3.0 SUBMIT to 99
numbers with a full message) is 3,649 bytes; SMSGate caps frames at the same 4 KiB."""

CONNECT = 0x00000001
TERMINATE = 0x00000002
SUBMIT = 0x00000004
DELIVER = 0x00000005
QUERY = 0x00000006
CANCEL = 0x00000007
ACTIVE_TEST = 0x00000008
FWD = 0x00000009
RESPONSE_BIT = 0x80000000
CONNECT_RESP = CONNECT | RESPONSE_BIT
TERMINATE_RESP = TERMINATE | RESPONSE_BIT
SUBMIT_RESP = SUBMIT | RESPONSE_BIT
DELIVER_RESP = DELIVER | RESPONSE_BIT
QUERY_RESP = QUERY | RESPONSE_BIT
CANCEL_RESP = CANCEL | RESPONSE_BIT
ACTIVE_TEST_RESP = ACTIVE_TEST | RESPONSE_BIT
FWD_RESP = FWD | RESPONSE_BIT


def is_version_30(version: int) -> bool:
    """Whether ``version`` is read with the 3.0 layout (0x30 and above)."""
    return version >= VERSION_30
