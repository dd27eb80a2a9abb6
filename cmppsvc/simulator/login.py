# -*- test-case-name: tests.test_simulator_protocol -*-
"""How the simulated gateway answers a CONNECT (reference sections 2.1 and 2.2)."""

from __future__ import annotations

import hmac
from collections.abc import Collection

import attrs

from cmppsvc.codec import (
    HEADER_LENGTH,
    VERSION_20,
    VERSION_30,
    CodecError,
    Connect,
    ConnectResp,
    decode,
    encode,
)
from cmppsvc.codec.auth import (
    authenticator_ismg,
    authenticator_source,
    ismg_status_size,
)
from cmppsvc.simulator.accounts import Accounts

STATUS_SUCCESS = 0
STATUS_STRUCTURE = 1
STATUS_UNKNOWN_ACCOUNT = 2
STATUS_AUTHENTICATION = 3
STATUS_VERSION = 4


@attrs.frozen
class LoginAnswer:
    """The CONNECT_RESP frame for one CONNECT, and what it decided."""

    status: int
    account: str | None  # Source_Addr; None when the CONNECT was unreadable
    version: int  # the version asked for
    response: bytes = attrs.field(repr=False)

    @property
    def accepted(self) -> bool:
        """Whether the login succeeded (Status 0)."""
        return self.status == STATUS_SUCCESS


def answer_connect(
    frame: bytes, seq: int, accounts: Accounts, versions: Collection[int]
) -> LoginAnswer:
    """Check one CONNECT frame and build its CONNECT_RESP.

    Status 4 when the version is not spoken, 2 for an unknown account, 3 for a
    wrong AuthenticatorSource, 1 for an unreadable CONNECT. The answer uses the
    layout of the version asked for (Status is 1 byte in 2.0, 4 in 3.0) so the
    client can read it; AuthenticatorISMG hashes the Status as those same wire
    bytes, and is zeros on a refusal.
    """
    try:
        connect = decode(frame, VERSION_20)
    except CodecError:
        response = ConnectResp(
            status=STATUS_STRUCTURE,
            authenticator_ismg=bytes(16),
            version=max(versions),
            seq=seq,
        )
        return LoginAnswer(
            STATUS_STRUCTURE, None, VERSION_20, encode(response, VERSION_20)
        )

    password = accounts.password(connect.source_addr)
    if connect.version not in versions:
        status = STATUS_VERSION
    elif password is None:
        status = STATUS_UNKNOWN_ACCOUNT
    elif not _authentic(frame, connect, password):
        status = STATUS_AUTHENTICATION
    else:
        status = STATUS_SUCCESS

    authenticator = bytes(16)
    if status == STATUS_SUCCESS:
        authenticator = authenticator_ismg(
            status,
            connect.authenticator_source,
            password,
            ismg_status_size(connect.version),
        )
    # A refused version is answered with the highest version spoken.
    answered = max(versions) if status == STATUS_VERSION else connect.version
    response = ConnectResp(
        status=status, authenticator_ismg=authenticator, version=answered, seq=seq
    )
    layout_version = VERSION_30 if connect.version >= VERSION_30 else VERSION_20
    return LoginAnswer(
        status, connect.source_addr, connect.version, encode(response, layout_version)
    )


def _authentic(frame: bytes, connect: Connect, password: str) -> bool:
    """Whether AuthenticatorSource is right (reference 2.1), in constant time.

    The hash covers the 6-byte Source_Addr as sent. For an account shorter than
    6 characters the clients disagree (gocmpp hashes the NUL-padded field,
    SMSGate and our codec the bare name), so both forms pass there.
    """
    as_sent = frame[HEADER_LENGTH : HEADER_LENGTH + 6]
    forms = {as_sent, connect.source_addr.encode("latin-1", "replace")}
    return any(
        hmac.compare_digest(
            connect.authenticator_source,
            authenticator_source(form.decode("ascii"), password, connect.timestamp),
        )
        for form in forms
        if form.isascii()
    )
