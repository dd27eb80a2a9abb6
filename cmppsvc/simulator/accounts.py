# -*- test-case-name: tests.test_simulator_loopback -*-
"""The accounts a simulated gateway accepts: account name -> password."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping


class Accounts:
    """Passwords by account (the CONNECT Source_Addr); never shows a password.

    A refused password is tested by giving the client a different password than
    the one registered here: the simulator has no special switch for it.
    """

    def __init__(self, passwords: Mapping[str, str] | None = None) -> None:
        self._passwords: dict[str, str] = {}
        for account, password in (passwords or {}).items():
            self.add(account, password)

    @classmethod
    def parse(cls, specifications: Iterable[str]) -> Accounts:
        """Build from ``ACCOUNT:PASSWORD`` texts (the twistd ``--account`` form)."""
        accounts = cls()
        for specification in specifications:
            accounts.add(*parse_account(specification))
        return accounts

    def add(self, account: str, password: str) -> None:
        """Register (or replace) one account."""
        if not account or len(account.encode("ascii", "replace")) > 6:
            raise ValueError(
                f"account {account!r} must be 1 to 6 characters (CMPP Source_Addr)"
            )
        self._passwords[account] = password

    def remove(self, account: str) -> None:
        """Forget one account; its next login is refused with Status 2."""
        self._passwords.pop(account, None)

    def password(self, account: str) -> str | None:
        """The password of ``account``, or None when the account is unknown."""
        return self._passwords.get(account)

    def __contains__(self, account: object) -> bool:
        return account in self._passwords

    def __iter__(self) -> Iterator[str]:
        return iter(self._passwords)

    def __len__(self) -> int:
        return len(self._passwords)

    def __repr__(self) -> str:
        return f"<Accounts {', '.join(self._passwords) or '(none)'}>"


def parse_account(specification: str) -> tuple[str, str]:
    """Split ``ACCOUNT:PASSWORD`` at the first colon (a password may hold colons).

    The error message names the account part only, never the password.
    """
    account, separator, password = specification.partition(":")
    if not separator or not account or not password:
        raise ValueError(
            f"account option for {account or '(empty)'!r} must be ACCOUNT:PASSWORD"
        )
    return account, password
