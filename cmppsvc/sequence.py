# -*- test-case-name: tests.test_sequence -*-
"""Sequence_Id allocation: blocks reserved ahead in a store, handed out synchronously.

The protocol asks for a ``seq`` synchronously for every PDU, so a round trip to
Redis per seq is out of the question. ``SequenceAllocator`` reserves a block of
counter values at a time (INCRBY on ``cmppsvc:seq:<channel>``) and fetches the
next block when half of the current one is used. The counter grows forever;
only the wire value wraps (0xFFFFFFFF -> 1, never 0). A new allocator after a
restart or a crash reserves above everything any earlier one reserved, so it
never repeats a seq that may still be in flight.
"""

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import Interface, implementer

from cmppsvc import keys
from cmppsvc.redisoutage import failure_text

#: Largest Sequence_Id on the wire; the next one is 1.
MAX_SEQ = 0xFFFFFFFF

#: Retry delays after a failed reservation: first and ceiling (seconds).
RETRY_INITIAL = 0.1
RETRY_MAX = 5.0


def wire_seq(counter: int) -> int:
    """The Sequence_Id sent for counter value ``counter`` (1, 2, ...)."""
    return (counter - 1) % MAX_SEQ + 1


class SequenceUnavailable(RuntimeError):  # noqa: N818 (name in the contract)
    """No reserved Sequence_Id is left and the next block has not arrived yet
    (the store is slow or unreachable); wait for ``SequenceAllocator.ready()``."""


class ISequenceStore(Interface):
    """Where Sequence_Id blocks are reserved; shared by every process."""

    def reserve(channel_id: str, count: int) -> defer.Deferred:  # noqa: N805
        """Reserve ``count`` more counter values; fires with the new high-water
        mark ``high``, the block being ``high - count + 1 .. high``."""


@implementer(ISequenceStore)
class RedisSequenceStore:
    """Blocks reserved with INCRBY on ``cmppsvc:seq:<channel>``.

    Reservations bypass the write-behind queue: the caller needs the answer.
    """

    def __init__(self, redis):
        self.redis = redis

    def reserve(self, channel_id: str, count: int) -> defer.Deferred:
        """See ``ISequenceStore.reserve``."""
        d = self.redis.execute_command("INCRBY", keys.sequence(channel_id), count)
        return d.addCallback(int)


@implementer(ISequenceStore)
class MemorySequenceStore:
    """Blocks reserved in memory: for tests and single-run demos only."""

    def __init__(self):
        self.high = {}

    def reserve(self, channel_id: str, count: int) -> defer.Deferred:
        """See ``ISequenceStore.reserve``."""
        self.high[channel_id] = self.high.get(channel_id, 0) + count
        return defer.succeed(self.high[channel_id])


class SequenceAllocator:
    """Hands out Sequence_Ids of one channel from blocks reserved ahead."""

    log = Logger()

    def __init__(
        self,
        store: ISequenceStore,
        channel_id: str,
        clock: IReactorTime,
        block: int = 1000,
    ):
        if block < 2:
            raise ValueError("block must be at least 2")
        self.store = store
        self.channel_id = channel_id
        self.clock = clock
        self.block = block

        # Current block: next counter value to hand out, last one of the block.
        self._next = 1
        self._last = 0
        self._spare = None
        self._fetching = False
        self._retry_delay = RETRY_INITIAL
        self._retry_call = None
        self._waiting = []
        self._stopped = False

    def start(self) -> defer.Deferred:
        """Reserve the first block; fires when ``next()`` can be called."""
        self._fetch()
        return self.ready()

    def stop(self) -> None:
        """Stop retrying a failed reservation."""
        self._stopped = True
        if self._retry_call is not None and self._retry_call.active():
            self._retry_call.cancel()
        self._retry_call = None

    def available(self) -> int:
        """How many seqs ``next()`` can hand out without waiting for the store."""
        spare = self._spare[1] - self._spare[0] + 1 if self._spare else 0
        return self._last - self._next + 1 + spare

    def ready(self) -> defer.Deferred:
        """Fires when ``next()`` will succeed."""
        if self.available() > 0:
            return defer.succeed(None)
        d = defer.Deferred()
        self._waiting.append(d)
        if not self._fetching and self._retry_call is None:
            self._fetch()
        return d

    def next(self) -> int:
        """The next Sequence_Id (wire value); raises ``SequenceUnavailable``."""
        if self._next > self._last:
            if self._spare is None:
                if not self._fetching and self._retry_call is None:
                    self._fetch()
                raise SequenceUnavailable(
                    f"no Sequence_Id reserved for channel {self.channel_id}: "
                    "waiting for the sequence store"
                )
            self._next, self._last = self._spare
            self._spare = None

        counter = self._next
        self._next += 1

        # Fetch the next block once half of this one is gone.
        if (
            self._spare is None
            and not self._fetching
            and self._retry_call is None
            and self._last - counter < self.block // 2
        ):
            self._fetch()
        return wire_seq(counter)

    def _fetch(self):
        self._fetching = True
        self._retry_call = None
        d = defer.maybeDeferred(self.store.reserve, self.channel_id, self.block)
        d.addCallbacks(self._reserved, self._failed)

    def _reserved(self, high: int):
        self._fetching = False
        if self._failing():
            self.log.info(
                "sequence store answering again channel={channel}",
                channel=self.channel_id,
            )
        self._retry_delay = RETRY_INITIAL
        block = (high - self.block + 1, high)
        if self._next > self._last:
            self._next, self._last = block
        else:
            self._spare = block

        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(None)

    def _failing(self) -> bool:
        return self._retry_delay > RETRY_INITIAL

    def _failed(self, failure):
        self._fetching = False
        if not self._failing():
            self.log.error(
                "reserving Sequence_Ids failed channel={channel}: {cause}",
                channel=self.channel_id,
                cause=failure_text(failure),
            )
        if self._stopped:
            waiting, self._waiting = self._waiting, []
            for d in waiting:
                d.errback(failure)
            return
        delay = self._retry_delay
        self._retry_delay = min(delay * 2, RETRY_MAX)
        self._retry_call = self.clock.callLater(delay, self._fetch)
