# -*- test-case-name: tests.test_httpapi -*-
"""The HTTP API: channel status, operator commands, MT intake and metrics.

- ``GET /channels``: every channel's status, from the status hashes of all
  processes; ``GET /channels/<id>``: one channel's.
- ``POST /channels/<id>/start``, ``/stop``, ``/reload``: the operator command
  of cmppsvc.commands (a stop kept in ``cmppsvc:stopped``, the command
  published to every process), acted on here before the answer.
- ``POST /channels/<id>/messages``: one MT entry (JSON ``to``, ``text``,
  ``id``, ``ext``), checked as the channel will check it, added to its stream.
- ``GET /metrics``: Prometheus text (cmppsvc.metrics).

Answers are JSON; an error is ``{"error": "...", "field": "..."}`` (``field``
for a bad body) with a status that says what kind: 400 bad body, 403 a web
page's request, 404 unknown path or channel, 405, 413 body too large, 503
Redis not answering within `ANSWER_TIMEOUT` (or not connected yet).

There is no authentication: listen on loopback, or behind something that
authenticates. A POST carrying an ``Origin`` header comes from a web page and
is refused, so that a page the operator visits cannot make the browser send
messages or stop channels through a loopback API. The channel password and
any status field named like a secret never appear in an answer or a log line;
each request is logged as one event with its method, path, status and channel,
never its body.
"""

from __future__ import annotations

import json
import math
from typing import Any

import attrs
from twisted.internet import defer
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from cmppsvc import keys
from cmppsvc.commands import ACTIONS, BadCommand, check_channel_id, publish_command
from cmppsvc.config import ChannelConfigError, parse_channel_record
from cmppsvc.configschema import is_secret_field
from cmppsvc.httpmessages import check_message, message_fields
from cmppsvc.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from cmppsvc.metrics import NUMBER_FIELDS, exposition, parse_number
from cmppsvc.mtmessage import InvalidMessage
from cmppsvc.redisconn import reply_text
from cmppsvc.redisoutage import failure_text, is_transient
from cmppsvc.status import read as read_status

log = Logger(namespace="cmppsvc.httpapi")

#: Seconds an answer waits for Redis (then 503) or for an action (then 202,
#: the action going on).
ANSWER_TIMEOUT = 5.0

#: Largest request body: an MT entry of 64 KiB, even written with JSON's
#: six-byte escapes.
MAX_BODY_BYTES = 256 * 1024

JSON_CONTENT_TYPE = "application/json; charset=utf-8"

# Paths and channel ids are shown in logs and answers up to this length.
_SHOWN_LENGTH = 200


class ApiError(Exception):
    """A request answered with an error status; `field` names what in the body
    is wrong."""

    def __init__(
        self, status: int, message: str, field: str | None = None, **headers: str
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = headers


@attrs.frozen
class Answer:
    """What a request gets back."""

    status: int
    body: bytes
    content_type: str = JSON_CONTENT_TYPE
    headers: dict = attrs.field(factory=dict)


def json_answer(status: int, value: Any, **headers: str) -> Answer:
    """An answer holding `value` as JSON (UTF-8, one line)."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False) + "\n"
    return Answer(status, text.encode("utf-8"), headers=headers)


def public_status(status: dict[str, str]) -> dict[str, Any]:
    """A status hash as an answer shows it: numbers as numbers (empty ones as
    null, anything else left as text), and no field named like a secret."""
    shown: dict[str, Any] = {}
    for name, value in status.items():
        if is_secret_field(name):
            continue
        if name in NUMBER_FIELDS:
            number = parse_number(value)
            finite = number is not None and math.isfinite(number)
            shown[name] = number if finite else (value or None)
        else:
            shown[name] = value
    return shown


class HttpApi(Resource):
    """The API's resources, answering from a running `CmppService`.

    `process` is the CmppService (its `collection` and `stores` are read at
    each request: until they exist the answer is 503); `clock` bounds the
    wait for Redis and for actions to `answer_timeout` seconds.
    """

    isLeaf = True

    def __init__(
        self, process: Any, clock: Any, answer_timeout: float = ANSWER_TIMEOUT
    ) -> None:
        super().__init__()
        self._process = process
        self._clock = clock
        self.answer_timeout = answer_timeout

    def render(self, request: Any) -> Any:
        """Answer in the background; every request ends in one log event."""
        method = request.method.decode("ascii", "replace")
        segments = [request_text(segment) for segment in request.postpath]
        if len(segments) > 1 and segments[-1] == "":
            segments.pop()  # a trailing slash
        path = shown("/" + "/".join(segments))
        named = len(segments) > 1 and segments[0] == "channels"
        channel_id = segments[1] if named else ""

        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))
        answering = defer.maybeDeferred(self._route, request, method, segments)
        answering.addErrback(self._error_answer, method, path)
        answering.addCallback(self._send, request, gone)
        answering.addCallback(log_request, method, path, shown(channel_id))
        return NOT_DONE_YET

    # -- routing ---------------------------------------------------------------

    def _route(self, request: Any, method: str, segments: list[str]) -> Any:
        if method not in ("GET", "HEAD") and request.getHeader("origin") is not None:
            raise ApiError(403, "requests from web pages are refused")
        if segments == ["metrics"]:
            _allow(method, "GET", "HEAD")
            return self._bounded(self._metrics())
        if segments[:1] != ["channels"] or len(segments) > 3:
            raise ApiError(404, "no such resource")
        if len(segments) == 1:
            _allow(method, "GET", "HEAD")
            return self._bounded(self._channels())

        channel_id = _channel_id(segments[1])
        if len(segments) == 2:
            _allow(method, "GET", "HEAD")
            return self._bounded(self._channel(channel_id))
        action = segments[2]
        if action == "messages":
            _allow(method, "POST")
            body = _body(request)
            return self._bounded(self._add_message(channel_id, body))
        if action in ACTIONS:
            _allow(method, "POST")
            return self._act(channel_id, action)
        raise ApiError(404, "no such resource")

    # -- resources -------------------------------------------------------------

    @defer.inlineCallbacks
    def _channels(self):
        collection, _redis = self._running()
        statuses = yield collection.read_statuses()
        return json_answer(200, {"channels": [public_status(s) for s in statuses]})

    @defer.inlineCallbacks
    def _channel(self, channel_id: str):
        collection, redis = self._running()
        if (yield redis.execute_command("GET", keys.channel_info(channel_id))) is None:
            raise _unknown(channel_id)
        status = yield read_status(redis, channel_id)
        status["channel"] = channel_id
        status["owner"] = (yield collection.leases.owner_of(channel_id)) or ""
        return json_answer(200, public_status(status))

    @defer.inlineCallbacks
    def _metrics(self):
        collection, _redis = self._running()
        statuses = yield collection.read_statuses()
        return Answer(200, exposition(statuses).encode("utf-8"), METRICS_CONTENT_TYPE)

    @defer.inlineCallbacks
    def _add_message(self, channel_id: str, body: bytes):
        _collection, redis = self._running()
        raw = yield redis.execute_command("GET", keys.channel_info(channel_id))
        if raw is None:
            raise _unknown(channel_id)
        try:
            config = parse_channel_record(channel_id, raw)
        except ChannelConfigError:
            # A refused record keeps its messages queued until it is fixed.
            config = None
        try:
            fields = message_fields(body)
            check_message(fields, config)
        except InvalidMessage as error:
            raise ApiError(400, str(error), error.field) from None

        flat = [item for pair in fields.items() for item in pair]
        stream = keys.mt_stream(channel_id)
        entry_id = reply_text((yield redis.execute_command("XADD", stream, "*", *flat)))
        answer = {"channel": channel_id, "entry_id": entry_id}
        answer["id"] = fields.get("id") or entry_id
        return json_answer(202, answer)

    @defer.inlineCallbacks
    def _act(self, channel_id: str, action: str):
        collection, redis = self._running()
        known = yield self._bounded(
            redis.execute_command("EXISTS", keys.channel_info(channel_id))
        )
        # A record deleted under a running channel: reload or stop it still.
        if not known and collection.channel(channel_id) is None:
            raise _unknown(channel_id)

        if action == "start":
            work = collection.start_channel(channel_id)
        elif action == "stop":
            work = collection.stop_channel(channel_id)
        else:
            work = _reload(collection, redis, channel_id)
        done = yield self._settle_within(work, action, channel_id)
        answer = {"channel": channel_id, "action": action, "done": done}
        return json_answer(200 if done else 202, answer)

    # -- helpers ---------------------------------------------------------------

    def _running(self) -> tuple[Any, Any]:
        """The collection and Redis connection; 503 until the start made them."""
        collection = getattr(self._process, "collection", None)
        stores = getattr(self._process, "stores", None)
        if collection is None or stores is None:
            raise ApiError(503, "cmppsvc is starting: Redis is not connected yet")
        return collection, stores.redis

    def _bounded(self, waiting: defer.Deferred) -> defer.Deferred:
        """`waiting` cancelled after `answer_timeout` (it reads, or adds an
        entry not sent yet: a command cancelled while it waits for Redis is
        never sent)."""
        return waiting.addTimeout(self.answer_timeout, self._clock)

    def _settle_within(
        self, work: defer.Deferred, action: str, channel_id: str
    ) -> defer.Deferred:
        """Fires True when `work` ends within `answer_timeout`, False when it
        still runs then. It is never cancelled: a stop cut in the middle would
        be worse than a slow one."""
        settled: defer.Deferred = defer.Deferred()

        def too_long() -> None:
            settled.callback(False)

        timer = self._clock.callLater(self.answer_timeout, too_long)

        def ended(result: Any) -> None:
            if timer.active():
                timer.cancel()
                if isinstance(result, Failure):
                    settled.errback(result)
                else:
                    settled.callback(True)
            elif isinstance(result, Failure):
                log.error(
                    "HTTP {action} of channel={channel} failed after its answer: "
                    "{reason}",
                    action=action,
                    channel=channel_id,
                    reason=failure_text(result),
                )

        work.addBoth(ended)
        return settled

    def _error_answer(self, failure: Failure, method: str, path: str) -> Answer:
        error = failure.value
        if isinstance(error, ApiError):
            body = {"error": error.message}
            if error.field is not None:
                body["field"] = error.field
            return json_answer(error.status, body, **error.headers)
        if failure.check(defer.TimeoutError, defer.CancelledError):
            reason = f"Redis did not answer within {self.answer_timeout:g} s"
            return json_answer(503, {"error": reason}, **{"Retry-After": "1"})
        if is_transient(failure):
            reason = f"Redis is not available: {failure_text(failure)}"
            return json_answer(503, {"error": reason}, **{"Retry-After": "1"})
        log.failure("HTTP {method} {path} failed", failure, method=method, path=path)
        return json_answer(500, {"error": "internal error (logged)"})

    @staticmethod
    def _send(answer: Answer, request: Any, gone: list[bool]) -> int:
        if not gone:
            request.setResponseCode(answer.status)
            request.setHeader("Content-Type", answer.content_type)
            request.setHeader("Content-Length", str(len(answer.body)))
            request.setHeader("Cache-Control", "no-store")
            request.setHeader("X-Content-Type-Options", "nosniff")
            for name, value in answer.headers.items():
                request.setHeader(name, value)
            request.write(answer.body)
            request.finish()
        return answer.status


def log_request(status: int, method: str, path: str, channel: str) -> None:
    """One event per request: POSTs and errors at info (5xx at warn), reads
    at debug."""
    if status >= 500:
        level = LogLevel.warn
    elif status >= 400 or method == "POST":
        level = LogLevel.info
    else:
        level = LogLevel.debug
    log.emit(
        level,
        "HTTP {method} {path} {status}",
        method=method,
        path=path,
        status=status,
        channel=channel,
    )


@defer.inlineCallbacks
def _reload(collection: Any, redis: Any, channel_id: str):
    """Reload as the Redis command does (every process re-reads the record),
    and here at once."""
    yield publish_command(redis, "reload", channel_id)
    yield collection.reload_channel(channel_id)


def _allow(method: str, *allowed: str) -> None:
    if method not in allowed:
        allowed_text = ", ".join(allowed)
        reason = f"{method} not allowed here: {allowed_text}"
        raise ApiError(405, reason, Allow=allowed_text)


def _channel_id(segment: str) -> str:
    try:
        return check_channel_id(segment)
    except BadCommand as error:
        raise ApiError(404, f"no such channel: {error}") from None


def _unknown(channel_id: str) -> ApiError:
    return ApiError(404, f"no such channel: {shown(channel_id)} has no record")


def _body(request: Any) -> bytes:
    """The request body, at most MAX_BODY_BYTES (413 beyond)."""
    content = getattr(request, "content", None)
    if content is None:
        return b""
    body = content.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        raise ApiError(413, f"body larger than {MAX_BODY_BYTES} bytes")
    return body


def request_text(segment: bytes) -> str:
    """Bytes of a request line as text (bad UTF-8 replaced)."""
    return segment.decode("utf-8", "replace")


def shown(text: str) -> str:
    """Text from a request, safe for a log line: printable and bounded."""
    return "".join(c if c.isprintable() else "?" for c in text[:_SHOWN_LENGTH])
