# -*- test-case-name: tests.test_codec -*-
"""CONNECT authentication: AuthenticatorSource, AuthenticatorISMG and the Timestamp.

The shared secret only ever enters an MD5 here; it is never part of a message,
exception or repr.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from datetime import datetime

from cmppsvc.codec.constants import is_version_30


def _secret_bytes(secret: str | bytes) -> bytes:
    # UTF-8 is ASCII for every real password and cannot fail, so no encoding error
    # can ever carry a piece of the secret into a log.
    return secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)


def connect_timestamp(moment: datetime) -> int:
    """The CONNECT Timestamp of ``moment``: MMDDHHMMSS read as a decimal number."""
    return int(moment.strftime("%m%d%H%M%S"))


def authenticator_source(
    source_addr: str, secret: str | bytes, timestamp: int
) -> bytes:
    """MD5(Source_Addr + 9 NULs + secret + "%010d" % timestamp), 16 bytes.

    ``source_addr`` is hashed exactly as given (no padding or cutting), the way SMSGate
    does it; for the usual 6-character SP_Id this is also what gocmpp computes.  The
    secret is hashed as its UTF-8 bytes (ASCII for any real password).
    """
    secret_bytes = _secret_bytes(secret)
    material = (
        source_addr.encode("gbk") + bytes(9) + secret_bytes + b"%010d" % timestamp
    )
    return hashlib.md5(material, usedforsecurity=False).digest()


def authenticator_ismg(
    status: int,
    authenticator_source: bytes,
    secret: str | bytes,
    status_size: int = 4,
) -> bytes:
    """MD5(Status + AuthenticatorSource + secret), the Status as ``status_size`` bytes
    big-endian (1 in 2.0, 4 in 3.0: the field's own wire bytes)."""
    secret_bytes = _secret_bytes(secret)
    status_bytes = struct.pack(">B" if status_size == 1 else ">I", status)
    material = status_bytes + authenticator_source + secret_bytes
    return hashlib.md5(material, usedforsecurity=False).digest()


def ismg_status_size(version: int) -> int:
    """Bytes of the CONNECT_RESP Status in ``version``: 1 (2.x) or 4 (3.0)."""
    return 4 if is_version_30(version) else 1


def check_authenticator_ismg(
    received: bytes,
    status: int,
    authenticator_source: bytes,
    secret: str | bytes,
) -> bool:
    """Whether ``received`` matches the 1-byte or the 4-byte Status form.

    Gateways disagree on the Status width they hash (reference 2.2), so either is
    accepted; compared in constant time.
    """
    for size in (1, 4):
        if status >= 256 and size == 1:
            continue
        expected = authenticator_ismg(status, authenticator_source, secret, size)
        if hmac.compare_digest(expected, received):
            return True
    return False
