# -*- test-case-name: tests.test_httpapi -*-
"""An MT entry posted to the HTTP API: its JSON body, checked as the channel
will check the stream entry.

The body is a JSON object with the MT stream fields (``to``, ``text``, ``id``,
``ext``; ``to`` may also be a list of numbers). It is refused with
`InvalidMessage` naming the field when the channel would refuse the entry
with a `failed` event: the same checks (cmppsvc.mtentries for the entry's
size and text, cmppsvc.mtmessage for the fields, the channel record's
`wordsMaxlen`, `expidLen` and `msgformat` through the long-message split), so
the producer learns at once instead of from the events stream.
"""

from __future__ import annotations

import json

from cmppsvc.codec.longsms import split_message
from cmppsvc.config import ChannelConfig
from cmppsvc.mtentries import UnreadableEntry, decode_entry
from cmppsvc.mtmessage import InvalidMessage, parse_mt_entry

#: The fields of an MT entry (README, "MT stream").
MESSAGE_FIELDS = ("to", "text", "id", "ext")

# An unknown field's name is quoted up to this length.
_MAX_NAME_SHOWN = 64


def message_fields(body: bytes) -> dict[str, str]:
    """The MT entry fields of a JSON request body; InvalidMessage naming the
    field (or ``body``) otherwise."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        raise InvalidMessage("body", "not a JSON document") from None
    if not isinstance(value, dict):
        raise InvalidMessage("body", "must be a JSON object")

    fields = {}
    for name, field_value in value.items():
        if name not in MESSAGE_FIELDS:
            if len(name) > _MAX_NAME_SHOWN or not name.isprintable():
                name = "a field"
            raise InvalidMessage(name, "unknown (a message has to, text, id, ext)")
        if name == "to" and isinstance(field_value, list):
            if not all(isinstance(number, str) for number in field_value):
                raise InvalidMessage("to", "a list of numbers holds strings only")
            field_value = ",".join(field_value)
        if not isinstance(field_value, str):
            raise InvalidMessage(name, "must be a string")
        try:
            field_value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidMessage(name, "not UTF-8 text") from None
        fields[name] = field_value

    # The stream's own bound on an entry's size.
    try:
        decode_entry([item for pair in fields.items() for item in pair])
    except UnreadableEntry as error:
        field, _, reason = str(error).partition(": ")
        if field not in fields:
            field, reason = "body", str(error)
        raise InvalidMessage(field, reason) from None
    return fields


def check_message(fields: dict[str, str], config: ChannelConfig | None) -> None:
    """InvalidMessage naming the field when the channel would refuse the
    entry (cmppsvc.outbound). Without a usable record (`config` None) only
    the bounds every channel has are checked."""
    if config is None:
        parse_mt_entry("0-0", fields)
        return

    message = parse_mt_entry("0-0", fields, config.number, config.expid_len)
    try:
        split_message(
            message.text,
            config.msg_fmt,
            words_len=config.words_len,
            words_max_len=config.words_max_len,
            udh16=config.udh16,
        )
    except ValueError as error:  # MessageTooLong, UnencodableText
        reason = str(error)
        if reason.startswith("text: "):
            reason = reason[len("text: ") :]
        raise InvalidMessage("text", reason) from None
