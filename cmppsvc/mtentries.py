# -*- test-case-name: tests.test_mtqueue,tests.test_stale_entries -*-
"""MT stream entries: what one looks like to cmppsvc, its acknowledgement and
its release.

An entry arrives from XREADGROUP as a flat list of field names and values; it is
accepted only as UTF-8 text within a size bound, so a producer's garbage cannot
make the service allocate without limit. Each field is measured before it is
decoded or copied, and a refusal names the field and keeps the caller's `id`
when that field is readable, so the producer can match the `failed` event to
its message. cmppsvc.mtqueue reads the entries.

An entry a reader took for a channel that no longer runs in its process is
released (``release_command``): handed to the consumer ``RELEASED_CONSUMER``,
which no process reads as, and made to look idle for a day, so the process
that runs the channel claims it at once, whatever its own consumer name.
"""

from __future__ import annotations

import txredisapi
from twisted.internet import defer

from cmppsvc import keys
from cmppsvc.mtmessage import MAX_ID_LENGTH, is_valid_message_id

#: Largest entry accepted (field names and values, UTF-8 bytes).
MAX_ENTRY_BYTES = 64 * 1024

#: Most fields in one entry: the contract names four, producers may add a few
#: of their own; thousands of tiny fields would cost far more than their bytes.
MAX_FIELDS = 256

#: Field names longer than this are shown by position in a reason, not quoted.
_MAX_NAME_SHOWN = 64

#: Problems listed in one reason; the rest are counted.
_MAX_PROBLEMS_SHOWN = 3

#: The consumer that holds released entries (no process may use the name).
RELEASED_CONSUMER = "cmppsvc:released"

#: Idle time (ms) given to a released entry: above every claim threshold.
RELEASED_IDLE_MS = 24 * 3600 * 1000

# KEYS[1] the stream; ARGV: group, this consumer, RELEASED_CONSUMER, idle ms,
# then (entry id, delivery count) pairs. An entry is released only while it is
# still pending for this consumer with the delivery count this consumer left:
# one delivered again since (a restart's re-read, a claim) is someone's work.
RELEASE_SCRIPT = """
local claim = {'XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0}
for i = 5, #ARGV - 1, 2 do
  local found = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2])
  if found[1] and tonumber(found[1][4]) == tonumber(ARGV[i + 1]) then
    claim[#claim + 1] = ARGV[i]
  end
end
if #claim == 5 then return 0 end
claim[#claim + 1] = 'IDLE'
claim[#claim + 1] = ARGV[4]
claim[#claim + 1] = 'JUSTID'
return #redis.call(unpack(claim))
"""

EntryId = str
Entry = tuple[EntryId, dict[str, str]]


class UnreadableEntry(ValueError):
    """An MT entry that cannot be taken as text; the message names the field
    and why. ``message_id`` is the caller's `id` when it was readable and
    valid, else None (events then carry the stream entry id)."""

    def __init__(self, reason: str, message_id: str | None = None) -> None:
        super().__init__(reason)
        self.message_id = message_id


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
    """The fields of a stream entry as {str: str}.

    ``UnreadableEntry`` when the entry is malformed, has more than MAX_FIELDS
    fields, a field that is not UTF-8, or is larger than ``limit`` bytes; the
    reason names the fields at fault ("text: not UTF-8").
    """
    if not isinstance(fields, list) or len(fields) % 2:
        raise UnreadableEntry("entry: malformed, not pairs of field and value")
    if len(fields) > 2 * MAX_FIELDS:
        raise UnreadableEntry(
            f"entry: {len(fields) // 2} fields, at most {MAX_FIELDS}",
            _readable_id(fields),
        )

    # The common entry: all text, and small even at 4 UTF-8 bytes a character.
    characters = 0
    for value in fields:
        if value.__class__ is not str:
            break
        characters += len(value)
    else:
        if characters * 4 <= limit:
            pairs = iter(fields)
            return dict(zip(pairs, pairs))
    return _decode_each_field(fields, limit)


def _decode_each_field(fields: list, limit: int) -> dict[str, str]:
    """decode_entry for an entry that needs measuring field by field."""
    entry = {}
    problems = []
    total = 0
    largest = (0, "")
    for position in range(0, len(fields), 2):
        number = position // 2 + 1
        name, name_size, name_problem = _text(fields[position], limit)
        if name_problem:
            problems.append(f"field {number} name: {name_problem}")
        label = _label(name, number)
        value, value_size, value_problem = _text(fields[position + 1], limit)
        if value_problem:
            problems.append(f"{label}: {value_problem}")

        total += name_size + value_size
        largest = max(largest, (name_size, f"field {number} name"), (value_size, label))
        if name is not None and value is not None:
            entry[name] = value

    # A field larger than the limit is named above; otherwise the fields
    # together are too large, and the largest one is the first to look at.
    size, label = largest
    if total > limit and size <= limit:
        problems.append(
            f"entry of {total} bytes is larger than {limit} "
            f"(largest field {label}: {size} bytes)"
        )
    if problems:
        raise UnreadableEntry(_reason(problems), _valid_id(entry.get("id")))
    return entry


def _text(value, limit: int) -> tuple[str | None, int, str]:
    """One field name or value as (text, UTF-8 size, problem): its size is
    bounded before it is decoded or encoded; text is None when it is not
    usable, and the problem says why."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, bytes):
        if len(value) > limit:
            return None, len(value), f"{len(value)} bytes, {_above(limit)}"
        try:
            return value.decode(), len(value), ""
        except UnicodeDecodeError:
            return None, len(value), "not UTF-8"
    if not isinstance(value, str):
        return None, 0, f"not text ({type(value).__name__})"

    # A character is 1 to 4 UTF-8 bytes: more characters than the limit is too
    # large without encoding anything.
    if len(value) > limit:
        return None, len(value), f"{len(value)} characters, {_above(limit)}"
    if value.isascii():
        return value, len(value), ""
    try:
        size = len(value.encode())
    except UnicodeEncodeError:
        return None, len(value), "not UTF-8"
    if size > limit:
        return None, size, f"{size} bytes, {_above(limit)}"
    return value, size, ""


def _above(limit: int) -> str:
    return f"larger than the entry limit of {limit} bytes"


def _label(name: str | None, number: int) -> str:
    """How a reason names a field: by name when it is short text."""
    if name is not None and 0 < len(name) <= _MAX_NAME_SHOWN and name.isprintable():
        return name
    return f"field {number}"


def _reason(problems: list[str]) -> str:
    shown = problems[:_MAX_PROBLEMS_SHOWN]
    if len(problems) > len(shown):
        shown.append(f"{len(problems) - len(shown)} more")
    return "; ".join(shown)


def _valid_id(value: str | None) -> str | None:
    return value if value is not None and is_valid_message_id(value) else None


def _readable_id(fields: list) -> str | None:
    """The caller's `id` of an entry not otherwise decoded: only the `id`
    field is looked at, within the size bound of an id."""
    found = None
    for position in range(0, len(fields) - 1, 2):
        if fields[position] in ("id", b"id"):
            found = fields[position + 1]
    if isinstance(found, bytes) and len(found) <= 4 * MAX_ID_LENGTH:
        try:
            found = found.decode()
        except UnicodeDecodeError:
            return None
    return _valid_id(found) if isinstance(found, str) else None


def done_commands(channel_id: str, entry_ids: list[EntryId]) -> tuple[tuple]:
    """What ends entries: their XACK, for a caller that queues it together with
    the writes it must go with (the outcome of an entry's last part). The
    entries leave the stream later, with the next trim (``cmppsvc.mttrim``)."""
    return (("XACK", keys.mt_stream(channel_id), keys.MT_GROUP, *entry_ids),)


def release_command(
    channel_id: str, consumer: str, entries: list[tuple[EntryId, int]]
) -> tuple:
    """The EVAL that releases ``entries``, (entry id, delivery count) pairs
    ``consumer`` holds and will not work on; its reply is how many were
    released (see ``RELEASE_SCRIPT`` for those that are not)."""
    arguments = [keys.MT_GROUP, consumer, RELEASED_CONSUMER, RELEASED_IDLE_MS]
    for entry_id, deliveries in entries:
        arguments += [entry_id, deliveries]
    return ("EVAL", RELEASE_SCRIPT, 1, keys.mt_stream(channel_id), *arguments)
