# -*- test-case-name: tests.test_collection -*-
"""The channel records as the collection reads them: found, parsed, compared.

Records (`channel-info:<id>`, JSON written by the admin system) are found
with SCAN, never KEYS. A record that does not parse is refused with the field
and the reason; `same_config` says whether a changed record needs a restart.
"""

from __future__ import annotations

from typing import Any

import attrs
from twisted.internet import defer
from twisted.logger import Logger

from cmppsvc import keys
from cmppsvc.config import ChannelConfig, ChannelConfigError
from cmppsvc.configschema import BOOKKEEPING_FIELDS
from cmppsvc.redisconn import reply_text

log = Logger(namespace="cmppsvc.collection")

#: Keys asked for per SCAN step.
SCAN_BATCH = 500


@defer.inlineCallbacks
def scan_channel_ids(redis: Any):
    """Every channel id that has a `channel-info:<id>` record, sorted."""
    ids: set[str] = set()
    cursor = 0
    prefix_length = len(keys.channel_info(""))
    while True:
        cursor, found = yield redis.execute_command(
            "SCAN", cursor, "MATCH", keys.channel_info_pattern(), "COUNT", SCAN_BATCH
        )
        ids.update(reply_text(key)[prefix_length:] for key in found)
        cursor = int(cursor)
        if cursor == 0:
            return sorted(ids)


def same_config(running: ChannelConfig, new: ChannelConfig) -> bool:
    """True when a new record would run exactly like the running one: the
    admin system's bookkeeping (configschema.BOOKKEEPING_FIELDS) and unknown
    fields do not count."""
    return all(
        getattr(running, field.name) == getattr(new, field.name)
        for field in attrs.fields(ChannelConfig)
        if field.name not in BOOKKEEPING_FIELDS and field.name != "extra"
    )


def report_refused(channel_id: str, error: ChannelConfigError, status: Any) -> None:
    """Say why a record is refused: in the log and in the channel's status
    hash (`status` is the StatusWriter), with the field and the reason."""
    log.error(
        "channel record refused channel={channel} field={field} reason={reason}",
        channel=channel_id,
        field=error.field,
        reason=error.reason,
    )
    status.update(channel_id, refusal_status(channel_id, error))


def refusal_status(channel_id: str, error: ChannelConfigError | str) -> dict:
    """The status hash fields of a channel whose record is refused."""
    field = getattr(error, "field", "")
    reason = getattr(error, "reason", str(error))
    return {
        "channel": channel_id,
        "state": "broken",
        "last_error": str(error),
        "error_field": field,
        "error_reason": reason,
    }
