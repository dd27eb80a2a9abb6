# -*- test-case-name: tests.test_endtoend -*-
"""Every Redis key name cmppsvc reads or writes, in one place.

A key is built by one function here and nowhere else, so a rename touches one
line and an operator can read the whole data layout on this page.

| key | type | meaning |
| --- | --- | --- |
| ``channel-info:<id>`` | string (JSON) | channel configuration, written by the
  operators' admin system, read only |
| ``cmppsvc:mt:<id>`` | stream, consumer group ``cmppsvc`` | messages to send |
| ``cmppsvc:events`` | stream (capped) | submit results, reports, MO, states |
| ``cmppsvc:stopped`` | set of channel ids | channels an operator stopped; every
  other good record runs (it replaced the first design's ``cmppsvc:autostart``
  set, which cmppsvc never writes) |
| ``cmppsvc:seq:<id>`` | integer | Sequence_Id high-water mark (blocks are
  reserved ahead with INCRBY) |
| ``cmppsvc:inflight:<id>`` | hash ``<entry id>/<part>`` -> JSON record | each
  part of an MT entry: intended, or sent with its seq, or a done mark |
| ``cmppsvc:msgid:<msg_id text>`` | hash, with a TTL | which message and segment a
  Msg_Id belongs to; matches delivery reports |
| ``cmppsvc:status:<id>`` | hash | channel state, last error, counters |
| ``cmppsvc:lease:<id>`` | string with PX | which process owns a channel (its
  owner name) |
| ``cmppsvc:control`` | pub/sub channel | operator commands between processes:
  JSON ``{"action": "start"|"stop"|"reload", "channel": "<id>"}`` |
| ``cmppsvc:config-changed`` | pub/sub channel | the admin system publishes a
  channel id after writing or deleting its record (``*`` or empty: rescan all) |
| ``__keyspace@<db>__:channel-info:*`` | keyspace notifications | seen when the
  server has ``notify-keyspace-events`` on (e.g. ``K$g``); cmppsvc never sets it |

Start rule: a channel runs when its record is good and its id is not in
``cmppsvc:stopped``. A new record therefore starts by default, the first start
on an empty Redis runs every record, a restart reconnects every channel that
was running, and an operator's stop survives restarts until a start.
"""

#: Prefix of every key cmppsvc owns (``channel-info`` belongs to the admin system).
PREFIX = "cmppsvc:"

#: Consumer group every process uses on the MT streams.
MT_GROUP = "cmppsvc"

#: The events stream (one for all channels).
EVENTS = PREFIX + "events"

#: Set of channel ids an operator stopped: they stay down, across restarts,
#: until an operator starts them again. It replaced the first design's
#: ``cmppsvc:autostart`` set, so that a new record starts by default.
STOPPED = PREFIX + "stopped"

#: Pub/sub channel the admin system notifies after changing a record: the
#: message is the channel id, or ``*`` (or empty) to rescan every record.
CONFIG_CHANGED = PREFIX + "config-changed"

#: Pub/sub channel for operator commands between processes.
CONTROL = PREFIX + "control"


def channel_info(channel_id: str) -> str:
    """The channel configuration JSON, owned by the operators' admin system."""
    return "channel-info:" + channel_id


def mt_stream(channel_id: str) -> str:
    """The stream of messages (MT) waiting to be sent on a channel."""
    return PREFIX + "mt:" + channel_id


def sequence(channel_id: str) -> str:
    """The Sequence_Id high-water mark of a channel (grows forever)."""
    return PREFIX + "seq:" + channel_id


def inflight(channel_id: str) -> str:
    """The in-flight hash of a channel: field ``<entry id>/<part>``, value a
    JSON record (intended, or sent with its seq, or a done mark)."""
    return PREFIX + "inflight:" + channel_id


def msgid(msg_id_text: str) -> str:
    """The index entry of one Msg_Id, given in its canonical text form."""
    return PREFIX + "msgid:" + msg_id_text


def status(channel_id: str) -> str:
    """The status hash of a channel (state, last error, counters)."""
    return PREFIX + "status:" + channel_id


def lease(channel_id: str) -> str:
    """The lease naming the process that runs a channel."""
    return PREFIX + "lease:" + channel_id


def channel_info_pattern() -> str:
    """The SCAN / PSUBSCRIBE pattern matching every channel record."""
    return channel_info("*")


def keyspace_channel_info(db: int) -> str:
    """The keyspace-notification pattern of every channel record in ``db``."""
    return f"__keyspace@{db}__:" + channel_info("*")
