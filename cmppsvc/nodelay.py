# -*- test-case-name: tests.test_nodelay -*-
"""TCP_NODELAY for every connection cmppsvc makes or accepts.

Each connection carries small request/answer messages (a SUBMIT, a Redis
command) while earlier writes may still be unacknowledged. With Nagle's
algorithm on, such a write is held until the peer acknowledges the earlier
one, and a peer that has nothing to say back delays its ACK: on loopback that
added milliseconds (up to the 40 ms delayed-ACK timer) to a SUBMIT written
after a DELIVER_RESP, or to a Redis command written behind another. Writes are
already coalesced per reactor turn, so turning Nagle off costs no extra
segments under load.
"""

from __future__ import annotations

from typing import Any


def disable_nagle(transport: Any) -> None:
    """Turn on TCP_NODELAY when ``transport`` is TCP (UNIX sockets and test
    transports have no Nagle, and no ``setTcpNoDelay``)."""
    set_no_delay = getattr(transport, "setTcpNoDelay", None)
    if set_no_delay is not None:
        set_no_delay(True)
