# -*- test-case-name: tests.test_collection,tests.test_reload -*-
"""Operator commands: start, stop and reload channels at run time.

From Python (embedding) call the collection: ``ChannelCollection.start_channel(id)``,
``stop_channel(id)``, ``reload_channel(id)``, ``status()`` (channels of this
process) and ``read_statuses()`` (every channel, from the status hashes).

Between processes a command is a PUBLISH on ``cmppsvc:control`` of a small JSON
object::

    {"action": "stop", "channel": "7377309771234304"}

``action`` is ``start``, ``stop`` or ``reload``; ``channel`` is a channel id
(``reload`` without one rescans every record). Every process receives it; the
process owning the channel acts on it, the others re-check their view. A stop
is remembered in ``cmppsvc:stopped`` before it is published, so it survives
restarts; ``publish_command`` does both steps the same way as the Python API.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
from twisted.internet import defer

from cmppsvc import keys

#: Actions a command may name.
ACTIONS = ("start", "stop", "reload")

#: A command is a few dozen bytes; anything longer is refused unread.
MAX_COMMAND_BYTES = 1024
MAX_CHANNEL_ID_LENGTH = 200


class BadCommand(ValueError):  # noqa: N818 (reads as what it is)
    """A control message that is not a valid command; the text says why."""


@attrs.frozen
class Command:
    """One operator command: an action and the channel it names (None: all)."""

    action: str
    channel: str | None = None

    def to_json(self) -> str:
        """The message published on ``cmppsvc:control``."""
        body: dict[str, str] = {"action": self.action}
        if self.channel is not None:
            body["channel"] = self.channel
        return json.dumps(body)


def check_channel_id(channel_id: Any) -> str:
    """A channel id as text; BadCommand when empty, too long or holding
    unprintable characters or a '*'."""
    if not isinstance(channel_id, str) or not channel_id:
        raise BadCommand("channel must be a non-empty string")
    if len(channel_id) > MAX_CHANNEL_ID_LENGTH:
        raise BadCommand(f"channel is longer than {MAX_CHANNEL_ID_LENGTH} characters")
    if not channel_id.isprintable() or "*" in channel_id:
        raise BadCommand("channel holds unprintable characters or '*'")
    return channel_id


def parse_command(message: bytes | str) -> Command:
    """Parse a control message; BadCommand naming the problem otherwise."""
    if len(message) > MAX_COMMAND_BYTES:
        raise BadCommand(f"command longer than {MAX_COMMAND_BYTES} bytes")
    try:
        text = message.decode("utf-8") if isinstance(message, bytes) else message
        body = json.loads(text)
    except (UnicodeDecodeError, ValueError) as error:
        raise BadCommand(f"not a JSON command: {str(error)[:80]}") from None
    if not isinstance(body, dict):
        raise BadCommand("a command is a JSON object")

    action = body.get("action")
    if action not in ACTIONS:
        raise BadCommand(f"action must be one of {', '.join(ACTIONS)}")
    channel = body.get("channel")
    if channel is None:
        if action != "reload":
            raise BadCommand(f"{action} needs a channel")
        return Command(action)
    return Command(action, check_channel_id(channel))


@defer.inlineCallbacks
def publish_command(redis: Any, action: str, channel_id: str | None = None):
    """Record and publish a command from any Redis client (an admin tool, a
    process that does not run the channel). Fires with the number of
    processes that received it."""
    if channel_id is not None:
        check_channel_id(channel_id)
    command = parse_command(Command(action, channel_id).to_json())

    if command.action == "stop":
        yield redis.execute_command("SADD", keys.STOPPED, command.channel)
    elif command.action == "start":
        yield redis.execute_command("SREM", keys.STOPPED, command.channel)
    receivers = yield redis.execute_command("PUBLISH", keys.CONTROL, command.to_json())
    return int(receivers or 0)
