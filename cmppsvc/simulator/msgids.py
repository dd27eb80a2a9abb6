# -*- test-case-name: tests.test_simulator_parts -*-
"""Fresh Msg_Ids as a gateway makes them: local clock time, gateway code, sequence."""

import time
from collections.abc import Callable

from twisted.internet.interfaces import IReactorTime

from cmppsvc.codec.msgid import compose_msg_id

SEQUENCE_LIMIT = 0x10000


class MsgIdAllocator:
    """Allocates unique Msg_Ids (reference section 7) from a clock.

    Each id packs the gateway's local time to the second, the gateway code and a
    16-bit sequence. More than 65,536 ids in one second would repeat, so the
    allocator then moves its seconds field ahead of the clock: ids stay unique
    for as long as the clock does not run backwards by more than the lead.
    """

    def __init__(
        self,
        clock: IReactorTime,
        gateway_code: int = 1001,
        localtime: Callable[[float], time.struct_time] = time.localtime,
    ) -> None:
        if not 0 <= gateway_code < 1 << 22:
            raise ValueError(f"gateway_code must fit 22 bits, got {gateway_code}")
        self.clock = clock
        self.gateway_code = gateway_code
        self._localtime = localtime
        self._second = -1
        self._base = 0
        self._next_sequence = 0

    def allocate(self, count: int = 1) -> int:
        """The first of ``count`` consecutive ids (a mass-send's range).

        A range never wraps its 16-bit sequence, so ``first + i`` is the id of
        destination ``i``.
        """
        now = int(self.clock.seconds())
        if now > self._second:
            self._start_second(now)
        elif self._next_sequence + count > SEQUENCE_LIMIT:
            self._start_second(self._second + 1)

        first = self._base | self._next_sequence
        self._next_sequence += count
        return first

    def _start_second(self, second: int) -> None:
        moment = self._localtime(second)
        self._second = second
        self._base = compose_msg_id(
            moment.tm_mon,
            moment.tm_mday,
            moment.tm_hour,
            moment.tm_min,
            moment.tm_sec,
            self.gateway_code,
            0,
        )
        self._next_sequence = 0
