# -*- test-case-name: tests.test_mttrim -*-
"""Trimming finished entries from the MT streams.

An MT stream is a work queue: once acknowledged, an entry has no use there, and
a producer cannot trim the stream safely itself (``MAXLEN`` drops entries not
read yet). Deleting each entry as it is acknowledged (XDEL) cost Redis about as
much as everything else it does for a message, so the streams are trimmed in
bulk instead: every entry older than the oldest one still pending in the
consumer group, or, with nothing pending, every entry before the last one the
group has read, goes with one ``XTRIM MINID ~`` (ids are compared, never
computed: a sequence part of 2^53 or more would not survive Lua's numbers).
The ``~`` lets Redis drop whole nodes only, which is nearly free; up to a node's
worth of finished entries (100 by default) stays until the next trim.
"""

from twisted.internet import defer

from cmppsvc import keys

# KEYS[1]: the stream; ARGV[1]: the group. Returns the number of entries
# trimmed. Entries not read yet come after the group's last-delivered id, and
# entries read but not acknowledged are pending: neither is ever trimmed. The
# streams are cmppsvc's alone: another consumer group's unread entries are not
# looked at.
TRIM_SCRIPT = """
local ok, pending = pcall(redis.call, 'XPENDING', KEYS[1], ARGV[1])
if not ok then
  return 0
end
local keep_from
if pending[1] > 0 then
  keep_from = pending[2]
else
  for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local name, last
    for position = 1, #group, 2 do
      if group[position] == 'name' then name = group[position + 1] end
      if group[position] == 'last-delivered-id' then last = group[position + 1] end
    end
    if name == ARGV[1] then
      keep_from = last
    end
  end
end
if keep_from == nil or keep_from == '0-0' then
  return 0
end
return redis.call('XTRIM', KEYS[1], 'MINID', '~', keep_from)
"""


def trim_stream(redis, channel_id: str) -> defer.Deferred:
    """Trim the finished entries of ``channel_id``'s MT stream; fires with how
    many went. A stream or group that does not exist is left alone."""
    return redis.eval(TRIM_SCRIPT, [keys.mt_stream(channel_id)], [keys.MT_GROUP])
