# -*- test-case-name: tests.test_mtqueue -*-
"""MT stream entries: what one looks like to cmppsvc, and its acknowledgement.

An entry arrives from XREADGROUP as a flat list of field names and values; it is
accepted only as UTF-8 text within a size bound, so a producer's garbage cannot
make the service allocate without limit. cmppsvc.mtqueue reads the entries.
"""

from __future__ import annotations

import txredisapi
from twisted.internet import defer

from cmppsvc import keys

#: Largest entry accepted (field names and values, UTF-8 bytes).
MAX_ENTRY_BYTES = 64 * 1024

EntryId = str
Entry = tuple[EntryId, dict[str, str]]


def reader_connection(
    host: str, port: int, password: str | None = None, dbid: int | None = None
) -> defer.Deferred:
    """A dedicated connection for the reader (no reply timeout: reads block;
    numbers not converted: field values stay text)."""
    return txredisapi.Connection(
        host,
        port,
        dbid=dbid,
        password=password,
        convertNumbers=False,
        replyTimeout=None,
    )


def decode_entry(fields, limit: int = MAX_ENTRY_BYTES) -> dict[str, str]:
    """The fields of a stream entry as {str: str}; ``ValueError`` naming the
    cause when the entry is not UTF-8, is malformed or larger than ``limit``."""
    if not isinstance(fields, list) or len(fields) % 2:
        raise ValueError("malformed entry")

    size = 0
    for value in fields:
        if isinstance(value, bytes):
            raise ValueError("entry is not UTF-8 text")
        size += len(value) if isinstance(value, str) else 24
    # len() counts characters; a character is at most 4 bytes, so measure
    # bytes only when the quick bound says it might be too large.
    if size * 4 > limit:
        size = sum(len(str(value).encode()) for value in fields)
        if size > limit:
            raise ValueError(f"entry of {size} bytes is larger than {limit}")

    entry = {}
    for position in range(0, len(fields), 2):
        name, value = fields[position], fields[position + 1]
        entry[str(name)] = value if isinstance(value, str) else str(value)
    return entry


def ack_command(channel_id: str, entry_ids: list[EntryId]) -> tuple:
    """The XACK of entries, for a caller that queues it together with the
    writes it must go with (the outcome of an entry's last part)."""
    return ("XACK", keys.mt_stream(channel_id), keys.MT_GROUP, *entry_ids)
