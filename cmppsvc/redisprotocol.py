# -*- test-case-name: tests.test_redisprotocol -*-
"""txredisapi's Redis protocol, its per-value work done in C (or by the JIT).

Every command cmppsvc sends and every reply it reads passes through two pure
Python loops of txredisapi: ``_build_command`` encodes each argument, and
``tryConvertData`` walks each reply value (a stream read is hundreds of them) to
decode it. Under load they took about a tenth of the service's CPU.

``FastRedisProtocol`` encodes a command in one call (``cmppsvc.resp``: hiredis's
on CPython) and decodes replies with a tight loop over exact types. Results are
the same as txredisapi's for the settings cmppsvc uses (``charset="utf-8"``,
``convertNumbers=False``): text comes back as ``str``, bytes that are not UTF-8
stay ``bytes``, integers stay ``int``. Any other setting, and any argument hiredis
would encode differently (a float, a bool, text that cannot be encoded), takes
txredisapi's own path. Its connections also turn Nagle off (``cmppsvc.nodelay``).
``FastSentinelFactory`` gives a master found through Sentinel the same protocol.

The AUTH and SELECT that open a connection are sent here, not by txredisapi,
which stops reconnecting for good on any failure there: a connection lost or
timed out during them is dropped and made again like any lost connection, and
only a refusal (a wrong password, a database out of range) stops the pool,
logged once, the password never shown.
"""

import txredisapi
from twisted.internet import defer
from twisted.logger import Logger

from cmppsvc.nodelay import disable_nagle
from cmppsvc.redisoutage import failure_text, is_transient
from cmppsvc.resp import Reader, pack_command

log = Logger(namespace="cmppsvc.redisprotocol")

# Arguments hiredis encodes exactly as txredisapi does. Floats are not among
# them: txredisapi writes 1.5 as "1.500000".
_SAME_ENCODING = frozenset((str, bytes, int))


def decode_reply(value):
    """A reply value with its UTF-8 bytes decoded, lists walked; bytes that do
    not decode stay bytes (as txredisapi leaves them)."""
    kind = value.__class__
    if kind is bytes:
        try:
            return value.decode()
        except UnicodeDecodeError:
            return value
    if kind is list:
        return _decode_list(value)
    return value


def _decode_list(values: list) -> list:
    decoded = []
    append = decoded.append
    for value in values:
        kind = value.__class__
        if kind is bytes:
            try:
                value = value.decode()
            except UnicodeDecodeError:
                pass
        elif kind is list:
            value = _decode_list(value)
        append(value)
    return decoded


class FastRedisProtocol(txredisapi.HiredisProtocol):
    """``txredisapi.HiredisProtocol`` with command encoding and reply decoding
    in C where the result is the same."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # hiredis's reader on CPython, the pure-Python one on PyPy.
        self._reader = Reader(
            protocolError=txredisapi.InvalidData, replyError=txredisapi.ResponseError
        )
        charset = (self.charset or "").replace("-", "").lower()
        self._fast = not self.convertNumbers and charset == "utf8"
        # The handshake is ours (connectionMade): txredisapi's sees neither.
        self._password, self.password = self.password, None
        self._dbid, self.dbid = self.dbid, None

    @defer.inlineCallbacks
    def connectionMade(self):
        """AUTH and SELECT, then txredisapi's own opening (which marks the
        connection usable, and through Sentinel first checks the role)."""
        # Nagle off: a command written while another is unanswered (a
        # write-behind batch, a report match) goes out at once instead of
        # waiting for the earlier one's reply (``cmppsvc.nodelay``).
        disable_nagle(self.transport)
        step = "AUTH"
        try:
            if self._password is not None:
                _raise_refusal((yield self.auth(self._password, self.username)))
            step = "SELECT"
            if self._dbid is not None:
                _raise_refusal((yield self.select(self._dbid)))
            step = "opening"
            yield super().connectionMade()
        except Exception as problem:
            self._handshake_failed(step, problem)

    def _handshake_failed(self, step: str, problem: Exception) -> None:
        """Drop the connection; a refusal also stops the pool reconnecting."""
        reason = failure_text(problem)
        if self._password:
            reason = reason.replace(self._password, "***")
        if is_transient(problem):
            # The pool makes it again with its backoff; an outage that lasts
            # is logged by the stores whose commands wait meanwhile.
            log.debug(
                "Redis connection failed during {step}, reconnecting: {reason}",
                step=step,
                reason=reason,
            )
            self.transport.loseConnection()
            return

        factory = self.factory
        if not factory.stopped:
            # Once per pool: its other connections are refused alike.
            log.error(
                "Redis {peer} refused {step} ({reason}): not reconnecting until "
                "the Redis URL (password, database) is fixed and cmppsvc restarted",
                peer=_peer_text(self.transport),
                step=step,
                reason=reason,
            )
        factory.stopTrying()
        self.transport.loseConnection()
        if not factory.isLazy:
            # Its caller waits for the pool on this Deferred.
            factory.connectionError(f"Redis refused {step}: {reason}")

    def dataReceived(self, data, unpause=False):
        try:
            super().dataReceived(data, unpause)
        except txredisapi.InvalidData as problem:
            # Not a Redis server, or a broken one: one line naming it, not a
            # traceback; the pool reconnects with its backoff.
            log.error(
                "Redis {peer} sent what is not the Redis protocol ({reason}): "
                "dropping the connection",
                peer=_peer_text(self.transport),
                reason=str(problem)[:200],
            )
            self.transport.abortConnection()

    def _build_command(self, *args, **kwargs):
        same = _SAME_ENCODING
        for value in args:
            if value.__class__ not in same:
                return super()._build_command(*args, **kwargs)
        if not self._fast:
            return super()._build_command(*args, **kwargs)
        try:
            return pack_command(args)
        except UnicodeError:
            # txredisapi's own path names the value it cannot encode.
            return super()._build_command(*args, **kwargs)

    def tryConvertData(self, data):
        if self._fast:
            return decode_reply(data)
        return super().tryConvertData(data)


def _raise_refusal(reply) -> None:
    # txredisapi may hand an error reply back as a value rather than a failure.
    if isinstance(reply, txredisapi.ResponseError):
        raise reply


def _peer_text(transport) -> str:
    """host:port or socket path of the server, for a log line."""
    peer = transport.getPeer()
    if hasattr(peer, "port"):
        return f"{peer.host}:{peer.port}"
    return str(getattr(peer, "name", peer))


class FastSentinelProtocol(FastRedisProtocol, txredisapi.SentinelRedisProtocol):
    """``FastRedisProtocol`` for a master found through Sentinel (which first
    checks the server's role)."""


class FastSentinelFactory(txredisapi.SentinelConnectionFactory):
    """txredisapi's Sentinel connection factory with ``FastSentinelProtocol``."""

    protocol = FastSentinelProtocol

    # Reconnect soon after a failover (txredisapi's ceiling is 10 s). The
    # ceiling is also its connect timeout to a master, so not below 2 s.
    maxDelay = 2.0
