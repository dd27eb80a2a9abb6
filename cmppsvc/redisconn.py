# -*- test-case-name: tests.test_redisconn -*-
"""Where Redis is (`RedisAddress`, parsed from a URL) and how to connect to it.

Three forms of address are understood:

- `redis://[[username]:password@]host[:port][/db]` - one server over TCP
  (port 6379 by default; an IPv6 host is written in brackets);
- `unix:///path/to/redis.sock[?db=N]` - one server over a UNIX socket (a
  password goes in the query: `?password=...`);
- `redis-sentinel://[[username]:password@]host[:port][,host[:port]...]/service[/db]`
  - the master of `service` as Sentinel reports it (sentinel port 26379 by
  default). The password is the master's; the sentinels are asked without one.

`connect_redis(address)` returns a txredisapi lazy connection pool: usable at
once (commands wait for the connection), and reconnecting with backoff by
itself, through a Sentinel failover too. The password never appears in
`str()`, `repr()`, or a log line written here.

What to do when Redis goes away for a moment is cmppsvc.redisoutage's job.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

import attrs
import txredisapi
from twisted.internet.endpoints import HostnameEndpoint, UNIXClientEndpoint

from cmppsvc.redisprotocol import FastRedisProtocol, FastSentinelFactory

#: Reconnect delays after a lost connection (seconds): the first, and the
#: ceiling. txredisapi's default ceiling, 10 s, kept the service away from a
#: Redis that was back for that long, past the channels' lease margin.
RECONNECT_INITIAL = 0.1
RECONNECT_MAX = 1.0

DEFAULT_PORT = 6379
DEFAULT_SENTINEL_PORT = 26379

# An address is a line of configuration; anything longer is a mistake.
MAX_URL_LENGTH = 4096

# Redis databases are numbered from 0; the default server has 16 but more
# may be configured, so only nonsense is refused.
MAX_DB = 1_000_000

SCHEMES = ("redis", "unix", "redis-sentinel")

_HOST = re.compile(r"[A-Za-z0-9._%-]+|\[[0-9A-Fa-f:.%A-Za-z]+\]")
_SERVICE_NAME = re.compile(r"[A-Za-z0-9._-]+")
_MASK = "***"


@attrs.frozen(repr=False)
class RedisAddress:
    """A Redis server (or a Sentinel-managed master) to connect to.

    `scheme` is "redis" (host, port), "unix" (path) or "redis-sentinel"
    (sentinels, service_name). `db` is the database to SELECT.
    """

    scheme: str
    host: str = ""
    port: int = 0
    path: str = ""
    sentinels: tuple[tuple[str, int], ...] = ()
    service_name: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)

    @classmethod
    def from_url(cls, url: str) -> RedisAddress:
        """Parse a redis://, unix:// or redis-sentinel:// URL; ValueError
        (naming what is wrong, never the password) when it is not one."""
        return parse_redis_url(url)

    def to_url(self, *, show_password: bool = False) -> str:
        """The address as a URL; the password is masked unless asked for."""
        secret = self.password
        if secret is not None and not show_password:
            secret = _MASK
        elif secret is not None:
            secret = quote(secret, safe="")

        if self.scheme == "unix":
            query = [f"db={self.db}"] if self.db else []
            if secret is not None:
                query.append(f"password={secret}")
            suffix = f"?{'&'.join(query)}" if query else ""
            return f"unix://{self.path}{suffix}"

        userinfo = ""
        if secret is not None or self.username is not None:
            user = quote(self.username or "", safe="")
            userinfo = f"{user}:{secret}@" if secret is not None else f"{user}@"
        if self.scheme == "redis-sentinel":
            hosts = ",".join(
                f"{_bracketed(host)}:{port}" for host, port in self.sentinels
            )
            return f"redis-sentinel://{userinfo}{hosts}/{self.service_name}/{self.db}"
        return f"redis://{userinfo}{_bracketed(self.host)}:{self.port}/{self.db}"

    def __str__(self) -> str:
        return self.to_url()

    def __repr__(self) -> str:
        return f"RedisAddress({self.to_url()!r})"


def _bracketed(host: str) -> str:
    """An IPv6 address in brackets, as URLs write it."""
    return f"[{host}]" if ":" in host else host


def parse_redis_url(url: str) -> RedisAddress:
    """Parse a Redis URL into a RedisAddress (see the module docstring)."""
    if not isinstance(url, str):
        raise ValueError(f"a Redis URL must be a string, got {type(url).__name__}")
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"a Redis URL is at most {MAX_URL_LENGTH} characters")

    scheme, separator, rest = url.strip().partition("://")
    scheme = scheme.lower()
    if not separator or scheme not in SCHEMES:
        raise ValueError(
            "a Redis URL starts with redis://, unix:// or redis-sentinel://"
            f" (got {_scheme_shown(url)})"
        )

    # The last "@" ends the credentials, so a password may hold "/", "?" or
    # ":" without percent-encoding. A unix:/// URL has none before the path
    # (its query may hold a password with an "@").
    userinfo, at, rest = (
        ("", "", rest) if rest.startswith("/") else rest.rpartition("@")
    )
    username, password = _parse_userinfo(userinfo) if at else (None, None)
    rest, _, query_text = rest.partition("?")
    query = _parse_query(query_text)

    if scheme == "unix":
        return _parse_unix(rest, query, username, password)

    hosts, _, path = rest.partition("/")
    parts = path.split("/") if path else []

    if "password" in query:
        password = query.pop("password")
    if query:
        raise ValueError(f"unknown Redis URL option {sorted(query)[0]!r}")

    if scheme == "redis-sentinel":
        sentinels = tuple(
            _parse_host_port(each, DEFAULT_SENTINEL_PORT) for each in hosts.split(",")
        )
        if not parts or not parts[0]:
            raise ValueError("a redis-sentinel URL needs /service_name after hosts")
        service_name = unquote(parts[0])
        if not _SERVICE_NAME.fullmatch(service_name):
            raise ValueError(f"bad Sentinel service name {service_name!r}")
        db = _parse_db(parts[1] if len(parts) > 1 else "", parts[2:])
        return RedisAddress(
            scheme=scheme,
            sentinels=sentinels,
            service_name=service_name,
            db=db,
            username=username,
            password=password,
        )

    if "," in hosts:
        raise ValueError("several hosts need a redis-sentinel:// URL")
    host, port = _parse_host_port(hosts, DEFAULT_PORT)
    db = _parse_db(parts[0] if parts else "", parts[1:])
    return RedisAddress(
        scheme=scheme,
        host=host,
        port=port,
        db=db,
        username=username,
        password=password,
    )


def _scheme_shown(url: str) -> str:
    """What precedes "://", for an error message (never the rest, which may
    hold a password)."""
    scheme, separator, _ = url.partition("://")
    return repr(scheme[:20]) if separator else "no scheme"


def _parse_query(query_text: str) -> dict[str, str]:
    """Query options: only db and password are known."""
    try:
        pairs = parse_qsl(query_text, keep_blank_values=True, strict_parsing=False)
    except ValueError:
        raise ValueError("bad query in Redis URL") from None
    return dict(pairs)


def _parse_userinfo(userinfo: str) -> tuple[str | None, str | None]:
    """(username, password) from `user:password` (either part may be empty)."""
    user, colon, secret = userinfo.partition(":")
    username = unquote(user) or None
    password = unquote(secret) if colon else None
    return username, password


def _parse_host_port(text: str, default_port: int) -> tuple[str, int]:
    """`host`, `host:port`, `[v6]` or `[v6]:port`."""
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"bad host {text[:80]!r} in Redis URL")
        port_text = rest[1:]
        shown_host = f"[{host}]"
    else:
        host, _, port_text = text.partition(":")
        shown_host = host
    if not host or not _HOST.fullmatch(shown_host):
        raise ValueError(f"bad or missing host {text[:80]!r} in Redis URL")

    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"bad port {port_text[:20]!r} in Redis URL")
    return host, int(port_text)


def _parse_db(text: str, trailing: list[str]) -> int:
    """The database number of a URL path; empty means 0."""
    if any(trailing):
        raise ValueError("unexpected path after the database number in Redis URL")
    if not text:
        return 0
    if not text.isdigit() or int(text) > MAX_DB:
        raise ValueError(f"bad database number {text[:20]!r} in Redis URL")
    return int(text)


def _parse_unix(
    rest: str, query: dict[str, str], username: str | None, password: str | None
) -> RedisAddress:
    """`unix://[user:password@]/path?db=N&password=...`."""
    path = unquote(rest)
    if not path.startswith("/") or path == "/":
        raise ValueError("a unix:// Redis URL needs the socket path: unix:///path")

    db = _parse_db(query.pop("db", ""), [])
    if "password" in query:
        password = query.pop("password")
    if query:
        raise ValueError(f"unknown Redis URL option {sorted(query)[0]!r}")
    return RedisAddress(
        scheme="unix", path=path, db=db, username=username, password=password
    )


class _SentinelConnectionHandler(txredisapi.ConnectionHandler):
    """A master connection that also closes its sentinels on disconnect();
    otherwise they would keep reconnecting after the pool is gone."""

    def disconnect(self):
        factory = self._factory
        closing = factory.disconnect()

        def close_sentinels(result):
            sentinels = factory.sentinel_manager.disconnect()
            return sentinels.addBoth(lambda _: result)

        return closing.addBoth(close_sentinels)


def connect_redis(
    address: RedisAddress | str,
    reactor: Any = None,
    *,
    pool_size: int = 1,
    connect_timeout: float = 10.0,
    reply_timeout: float | None = None,
):
    """A txredisapi lazy connection pool to `address` (a RedisAddress or URL).

    The handler is returned at once: commands issued before the connection is
    up wait for it, and a lost connection is re-established with backoff by
    txredisapi (ClientService underneath). Replies keep their text: numbers are
    not converted (`convertNumbers=False`), so "007" stays "007"; Redis integer
    replies are ints. Close it with `disconnect()` (a Deferred).

    One connection by default: commands then run in the order they are issued,
    which the write-behind stores rely on. `reactor` makes the connections
    (default: the global reactor); txredisapi schedules its own reconnect and
    Sentinel timers on the global reactor whatever is passed.
    """
    if isinstance(address, str):
        address = parse_redis_url(address)
    if reactor is None:
        from twisted.internet import reactor

    options = {
        "charset": "utf-8",
        "password": address.password,
        "username": address.username,
        "replyTimeout": reply_timeout,
        "convertNumbers": False,
    }
    dbid = address.db or None

    if address.scheme == "redis-sentinel":
        sentinel = txredisapi.Sentinel(list(address.sentinels))
        return sentinel.master_for(
            address.service_name,
            dbid=dbid,
            poolsize=pool_size,
            isLazy=True,
            handler=_SentinelConnectionHandler,
            factory_class=FastSentinelFactory,
            **options,
        )

    if address.scheme == "unix":
        endpoint = UNIXClientEndpoint(reactor, address.path, timeout=connect_timeout)
        handler = txredisapi.UnixConnectionHandler
        name = address.path
    else:
        endpoint = HostnameEndpoint(
            reactor, address.host, address.port, timeout=connect_timeout
        )
        handler = txredisapi.ConnectionHandler
        name = f"{address.host}:{address.port}"

    factory = txredisapi.RedisFactory(
        name, dbid, pool_size, isLazy=True, handler=handler, **options
    )
    factory.protocol = FastRedisProtocol
    factory.initialDelay = RECONNECT_INITIAL
    factory.maxDelay = RECONNECT_MAX
    factory.startConnecting(endpoint)
    return factory.handler


def reply_text(value: Any) -> str:
    """A Redis reply value as text: bytes decoded as UTF-8 (bad bytes replaced),
    anything else through str()."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
