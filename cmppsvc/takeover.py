# -*- test-case-name: tests.test_collection_takeover,tests.test_multiprocess -*-
"""Channel ownership between processes: lease loss, takeover, stale claims.

Several processes may read the same records; a channel runs only in the
process holding its lease (cmppsvc.lease). Rules:

- Every ``ttl / 3`` each process tries to take the leases of good records
  that run nowhere, so a dead process's channels are taken over within the
  lease time.
- The new owner then claims the MT entries the old owner's consumer left
  pending (XCLAIM once they are idle for a lease time). That is done only for
  a channel just started here, for ``CLAIM_PERIOD_LEASES`` lease times, and
  only while the stream's XPENDING summary names another consumer: a channel
  nobody left entries on costs one summary at its start, then nothing.
  Entries left pending later, or still too fresh then, are taken by the MT
  reader's periodic sweep (cmppsvc.mtqueue) once idle for ``STALE_IDLE``.
- A process losing a lease stops the channel at once and aborts any
  connection left before the lease can expire.
"""

from __future__ import annotations

from typing import Any

import txredisapi
from twisted.internet import defer
from twisted.logger import Logger

from cmppsvc import keys
from cmppsvc.redisconn import reply_text

log = Logger(namespace="cmppsvc.collection")

#: Takeover claims MT entries left pending this long by another consumer, for
#: this many lease times after taking a channel.
CLAIM_PERIOD_LEASES = 3


class LeaseCoordination:
    """The lease side of `ChannelCollection` (a mixin): it uses the
    collection's ``leases``, ``_channels``, ``_candidates``, ``_locks``,
    ``_taken_at``, ``_stores``, ``_clock``, ``reconcile``, ``_stop_service``
    and ``_report_trouble``."""

    def _lease_lost(self, channel_id: str, reason: str) -> None:
        """Stop at once; abort what is left before the lease can expire."""
        channel = self._channels.pop(channel_id, None)
        self._taken_at.pop(channel_id, None)
        if channel is None:
            return
        self._stores.mt_reader.remove_channel(channel_id)
        abort = self._clock.callLater(
            self.leases.margin * 0.8, self._abort_connections, channel
        )
        stopping = self._stop_service(channel)
        stopping.addBoth(lambda _: abort.active() and abort.cancel())
        self._stores.status.update(
            channel_id, {"owner": "", "stop_reason": f"lease lost: {reason}"}
        )

    @staticmethod
    def _abort_connections(channel: Any) -> None:
        """Close every connection of a channel now (its lease is ending)."""
        if channel.connector is not None:
            channel.connector.abort()

    def _take_over(self) -> defer.Deferred:
        """Take the free leases of good records that run nowhere, and claim
        what the previous owners left pending. Never fails: a failure would
        end the LoopingCall that runs it."""
        taking = self._take_free_leases()
        taking.addErrback(lambda failure: log.failure("taking over failed", failure))
        return taking

    @defer.inlineCallbacks
    def _take_free_leases(self):
        free = sorted(self._candidates - set(self._channels) - set(self._locks))
        results = yield defer.DeferredList(
            [self.leases.acquire(channel_id) for channel_id in free],
            consumeErrors=True,
        )
        taken = []
        for channel_id, (success, result) in zip(free, results):
            if not success:
                self._report_trouble("taking over channels", result.value)
            elif result:
                log.info("taking over channel={channel}", channel=channel_id)
                taken.append(channel_id)
        yield defer.DeferredList([self.reconcile(channel_id) for channel_id in taken])

        now = self._clock.seconds()
        recent = []
        for channel_id, taken_at in list(self._taken_at.items()):
            if now - taken_at > CLAIM_PERIOD_LEASES * self.leases.ttl:
                del self._taken_at[channel_id]
            else:
                recent.append(channel_id)
        yield self._claim_all(recent)

    def _claim_all(self, channel_ids: list[str]) -> defer.Deferred:
        """Claim for several channels at once (the claims share the MT
        reader's connection, which may be blocked in a read for a while)."""
        return defer.DeferredList(
            [self._claim(channel_id) for channel_id in channel_ids]
        )

    @defer.inlineCallbacks
    def _claim(self, channel_id: str):
        """Claim MT entries another consumer left pending a lease time; stop
        looking at the channel once no other consumer has any pending."""
        if channel_id not in self._channels:
            return
        try:
            if not (yield self._pending_elsewhere(channel_id)):
                self._taken_at.pop(channel_id, None)
                return
            claimed = yield self._stores.mt_reader.claim_stale(
                channel_id, self.leases.ttl_ms
            )
        except KeyError:
            return
        except txredisapi.ResponseError as error:
            if "NOGROUP" in str(error):
                # no stream or group yet: nothing can be pending
                self._taken_at.pop(channel_id, None)
            else:
                self._report_trouble(f"claiming entries of channel {channel_id}", error)
            return
        except Exception as error:
            if not self.running:
                # Stopping closes the reader's connection under the claim.
                return
            self._report_trouble(f"claiming entries of channel {channel_id}", error)
            return
        if claimed:
            log.info(
                "claimed {count} MT entries left by another process channel={channel}",
                count=claimed,
                channel=channel_id,
            )

    @defer.inlineCallbacks
    def _pending_elsewhere(self, channel_id: str):
        """True when the XPENDING summary of the channel's stream names a
        consumer other than this process's (asked on the command connection,
        which never blocks in a read)."""
        reply = yield self._stores.redis.execute_command(
            "XPENDING", keys.mt_stream(channel_id), keys.MT_GROUP
        )
        consumers = reply[3] if isinstance(reply, list) and len(reply) > 3 else None
        own = getattr(self._stores.mt_reader, "consumer_name", None)
        return any(
            isinstance(item, list) and item and reply_text(item[0]) != own
            for item in consumers or ()
        )
