# -*- test-case-name: tests.test_writebehind -*-
"""A batch of Redis commands as ONE command: an EVAL that runs them in order.

``encode_command``/``encode_commands`` turn queued commands into RESP once, when
they are queued; ``batch_command`` wraps any number of them into the EVAL of
``BATCH_SCRIPT``; ``send_raw`` writes it on a txredisapi connection and fires
with the script's reply (the positions and errors of the commands Redis
refused, which ``command_names`` turns back into names for the log).
"""

from __future__ import annotations

import txredisapi
from twisted.internet import defer

from cmppsvc.resp import pack_command

# Runs the batch: ARGV is, per command, its argument count then its arguments.
# A command that fails (wrong type, bad argument) does not stop the others; its
# position and error come back so the caller can log it. The shebang makes Redis
# refuse the whole script up front when out of memory or read-only: the batch
# then fails untouched and is retried as a whole.
#
# A GUARD pseudo-command (GUARD, lease key, owner, n) makes the n commands after
# it run only while the lease is that owner's or nobody's (each lease read once
# per batch): the writes of a channel another process has taken over are
# skipped, counted in one pair (0, reason) at the end of the reply.
GUARD = "cmppsvc:guard"
BATCH_SCRIPT = (
    b"""#!lua
local failed = {}
local position = 1
local index = 0
local total = #ARGV
local holders = {}
local skipped = 0
while position <= total do
  local size = tonumber(ARGV[position])
  index = index + 1
  if ARGV[position + 1] == '"""
    + GUARD.encode()
    + b"""' then
    local key, owner = ARGV[position + 2], ARGV[position + 3]
    local guarded = tonumber(ARGV[position + 4])
    local holder = holders[key]
    if holder == nil then
      holder = redis.pcall('GET', key)
      if type(holder) ~= 'string' then
        holder = ''
      end
      holders[key] = holder
    end
    position = position + size + 1
    if holder ~= '' and holder ~= owner then
      for _ = 1, guarded do
        position = position + tonumber(ARGV[position]) + 1
        index = index + 1
      end
      skipped = skipped + 1
    end
  else
    local reply = redis.pcall(unpack(ARGV, position + 1, position + size))
    if type(reply) == 'table' and reply.err then
      failed[#failed + 1] = index
      failed[#failed + 1] = reply.err
    end
    position = position + size + 1
  end
end
if skipped > 0 then
  failed[#failed + 1] = 0
  failed[#failed + 1] = skipped .. ' written-behind items skipped: '
    .. 'their channel is leased by another process'
end
return failed
"""
)

_BATCH_HEADER = b"$4\r\nEVAL\r\n$%d\r\n%b\r\n$1\r\n0\r\n" % (
    len(BATCH_SCRIPT),
    BATCH_SCRIPT,
)


def encode_command(arguments: tuple | list) -> tuple[bytes, int]:
    """RESP of one queued command: its argument count, then its arguments.

    Returns the bytes and how many RESP arguments they hold. Arguments are
    str, bytes, int or float (floats as ``repr``); others raise ``TypeError``.
    """
    # One call for the whole command (hiredis's, in C, on CPython): this runs
    # for every argument written. Its array header is dropped: the batch has its own.
    try:
        packed = pack_command((len(arguments), *arguments))
    except TypeError:
        packed = pack_command((len(arguments), *map(_plain, arguments)))
    return packed[packed.index(b"\n") + 1 :], len(arguments) + 1


def encode_commands(commands) -> tuple[bytes, int]:
    """RESP of several queued commands, as ``encode_command`` of each one
    joined, in ONE hiredis call (the per-call cost dominates for small
    commands): returns the bytes and how many RESP arguments they hold."""
    flat = []
    for arguments in commands:
        flat.append(len(arguments))
        flat += arguments
    try:
        packed = pack_command(tuple(flat))
    except TypeError:
        packed = pack_command(tuple(map(_plain, flat)))
    return packed[packed.index(b"\n") + 1 :], len(flat)


def _plain(value):
    # bool and other int subclasses are sent as their number
    if isinstance(value, int):
        return int(value)
    if isinstance(value, (str, bytes, float)):
        return value
    raise TypeError(f"cannot send {type(value).__name__} to Redis")


def command_names(encoded: bytes) -> list[bytes]:
    """The name of each command in encoded batch commands (``encode_command``
    output joined): the Lua script's command positions count commands, not
    queue items (an item may hold several, a cancelled one none)."""
    names = []
    position = 0
    end = len(encoded)

    def bulk():
        nonlocal position
        line_end = encoded.index(b"\r\n", position)
        size = int(encoded[position + 1 : line_end])
        start = line_end + 2
        position = start + size + 2
        return encoded[start : start + size]

    while position < end:
        count = int(bulk())
        names.append(bulk())
        for _ in range(count - 1):
            bulk()
    return names


def connection_of(redis) -> defer.Deferred:
    """The txredisapi protocol instance to write a batch on."""
    if isinstance(redis, txredisapi.ConnectionHandler):
        return redis._factory.getConnection(peek=True)
    return defer.succeed(redis)


def send_raw(connection, command: bytes) -> defer.Deferred:
    """Write one command already encoded as RESP on a txredisapi connection
    (from ``connection_of``); fires with its reply."""
    # txredisapi has no public way to send pre-encoded bytes. Its own
    # execute_command does exactly this: write, then take the next reply from
    # the reply queue; doing both in one step keeps replies matched.
    if not connection.connected:
        raise txredisapi.ConnectionError("Not connected")
    connection.transport.write(command)
    return connection.replyQueue.get().addCallback(connection.handle_reply)


def batch_command(parts: list[bytes], count: int) -> bytes:
    """The EVAL running ``parts`` (``encode_command`` outputs holding ``count``
    RESP arguments in all)."""
    return b"*%d\r\n%b%b" % (count + 3, _BATCH_HEADER, b"".join(parts))
