# -*- test-case-name: tests.test_protocol -*-
"""The login of one connection: the CONNECT we send and the verdict on CONNECT_RESP.

Success is Status 0 alone (reference 2.2).  An AuthenticatorISMG matching neither
the 1-byte nor the 4-byte Status form is logged as a warning and accepted, because
gateways disagree on it.  A refusal is logged exactly once, with the Status, its
meaning, the account and the gateway address (never the secret), and classified by
``cmppsvc.backoff.login_failure_kind`` so the reconnect waits long enough.
"""

from __future__ import annotations

import datetime

from twisted.logger import Logger

from cmppsvc.backoff import login_failure_kind
from cmppsvc.codec import Connect, ConnectResp, encode
from cmppsvc.codec.auth import (
    authenticator_source,
    check_authenticator_ismg,
    connect_timestamp,
)
from cmppsvc.codec.codes import connect_status
from cmppsvc.settings import ConnectionSettings


class RefusalError(Exception):
    """The gateway refused the login: ``status``, its meaning and backoff ``kind``."""

    def __init__(self, status: int, reason: str, kind: str) -> None:
        super().__init__(f"login refused: Status {status} ({reason})")
        self.status = status
        self.reason = reason
        self.kind = kind


class Login:
    """One login attempt: the CONNECT frame, its deadline and the verdict."""

    log = Logger()

    def __init__(self, settings: ConnectionSettings, seq: int, now: float) -> None:
        self.settings = settings
        self.seq = seq
        self.deadline = now + settings.response_timeout

        # The Timestamp is the local time of the injected clock, MMDDHHMMSS.
        timestamp = connect_timestamp(datetime.datetime.fromtimestamp(now))
        self._authenticator = authenticator_source(
            settings.account, settings.password, timestamp
        )
        connect = Connect(
            source_addr=settings.account,
            authenticator_source=self._authenticator,
            version=settings.version,
            timestamp=timestamp,
            seq=seq,
        )
        self.frame = encode(connect, settings.version)

    def _fields(self) -> dict:
        settings = self.settings
        return {
            "channel": settings.channel_id,
            "account": settings.account,
            "gateway": settings.gateway,
        }

    def judge(self, pdu: ConnectResp) -> None:
        """Accept a Status 0 answer (logged); raise ``RefusalError`` for any other."""
        status = pdu.status
        if status != 0:
            refusal = RefusalError(
                status, str(connect_status(status)), login_failure_kind(status)
            )
            self.log.warn(
                "login refused channel={channel} account={account} "
                "gateway={gateway} status={status} reason={reason}",
                status=status,
                reason=refusal.reason,
                **self._fields(),
            )
            raise refusal

        if not check_authenticator_ismg(
            pdu.authenticator_ismg, status, self._authenticator, self.settings.password
        ):
            self.log.warn(
                "AuthenticatorISMG does not match, accepted (Status 0) "
                "channel={channel} account={account} gateway={gateway}",
                **self._fields(),
            )
        self.log.info(
            "logged in channel={channel} account={account} gateway={gateway} "
            "gateway_version=0x{version:02x}",
            version=pdu.version,
            **self._fields(),
        )
