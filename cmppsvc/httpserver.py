# -*- test-case-name: tests.test_httpapi -*-
"""Serving the HTTP API (cmppsvc.httpapi) on a Twisted server endpoint.

`HttpApiService` listens on an endpoint description (``--http``, such as
``tcp:8080:interface=127.0.0.1``) for as long as the process service runs.
Its requests are `BoundedRequest`: twisted.web keeps a whole request body
before the resource sees it, so a body above MAX_BODY_BYTES is refused while
it arrives, with a 413, and never kept.
"""

from __future__ import annotations

import io
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import Request, Site

from cmppsvc.httpapi import (
    ANSWER_TIMEOUT,
    JSON_CONTENT_TYPE,
    MAX_BODY_BYTES,
    HttpApi,
    json_answer,
    log_request,
    request_text,
    shown,
)
from cmppsvc.redisoutage import failure_text

log = Logger(namespace="cmppsvc.httpapi")

#: Seconds an idle HTTP connection is kept open.
IDLE_TIMEOUT = 60


class HttpListenError(Exception):
    """The HTTP API's endpoint could not listen; the message says why."""


class BoundedRequest(Request):
    """A request whose body may not exceed MAX_BODY_BYTES: a larger one is
    answered 413 and the connection closed as soon as that is known (from
    Content-Length, or while a chunked body arrives), and is never kept."""

    max_body = MAX_BODY_BYTES

    # The body is JSON: twisted.web need not parse forms out of it.
    _parsePOSTFormSubmission = False

    _body_size = 0
    _refused = False

    def gotLength(self, length: int | None) -> None:
        """Refuse a declared length above the bound before reading any."""
        if length is not None and length > self.max_body:
            self._refuse_body()
        else:
            super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        """Keep the body while within the bound; refuse it once above."""
        if self._refused:
            return
        self._body_size += len(data)
        if self._body_size > self.max_body:
            self._refuse_body()
        else:
            super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        """Process the request, unless its body was refused."""
        if not self._refused:
            super().requestReceived(command, path, version)

    def _refuse_body(self) -> None:
        self._refused = True
        self.content = io.BytesIO()
        body = json_answer(413, {"error": f"body larger than {self.max_body} bytes"})
        head = (
            "HTTP/1.1 413 Request Entity Too Large\r\n"
            f"Content-Type: {JSON_CONTENT_TYPE}\r\n"
            f"Content-Length: {len(body.body)}\r\n"
            "Connection: close\r\n\r\n"
        )
        self.channel.transport.write(head.encode("ascii") + body.body)
        self.channel.loseConnection()

        # The method and path are the channel's until the request is complete,
        # which this one never is.
        method = request_text(getattr(self.channel, "_command", b"") or b"")
        path = request_text(getattr(self.channel, "_path", b"") or b"").split("?")[0]
        segments = path.split("/")
        channel_id = segments[2] if segments[1:2] == ["channels"] else ""
        log_request(413, method, shown(path), shown(channel_id))


class ApiSite(Site):
    """A Site without twisted.web's access log: cmppsvc.httpapi logs each
    request as a structured event instead."""

    def log(self, request: Any) -> None:
        """Nothing: see the class."""


class HttpApiService(Service):
    """Serves the HTTP API of `process` (a CmppService) on a Twisted server
    endpoint description such as ``tcp:8080:interface=127.0.0.1``."""

    name = "http-api"

    def __init__(
        self,
        description: str,
        process: Any,
        reactor: Any,
        answer_timeout: float = ANSWER_TIMEOUT,
    ) -> None:
        self.description = description
        self._reactor = reactor
        self.site = ApiSite(
            HttpApi(process, reactor, answer_timeout),
            timeout=IDLE_TIMEOUT,
            reactor=reactor,
        )
        self.site.requestFactory = BoundedRequest
        self.site.noisy = False
        self.port: Any = None
        self._listening: defer.Deferred | None = None
        self._failure: Failure | None = None

    def startService(self) -> None:
        """Start listening; `whenListening()` tells how that went."""
        super().startService()
        self._failure = None
        self._listening = defer.maybeDeferred(
            lambda: serverFromString(self._reactor, self.description).listen(self.site)
        )
        self._listening.addCallbacks(self._listened, self._not_listening)

    def whenListening(self) -> defer.Deferred:
        """Fires with the listening port, or fails with HttpListenError."""
        result: defer.Deferred = defer.Deferred()
        if self._listening is None:
            result.errback(HttpListenError("the HTTP API has not been started"))
            return result

        def done(value: Any) -> Any:
            if self._failure is not None:
                result.errback(self._failure)
            else:
                result.callback(self.port)
            return value

        self._listening.addBoth(done)
        return result

    def stopService(self) -> Any:
        """Stop listening (requests under way still get their answers)."""
        super().stopService()
        if self._listening is not None and not self._listening.called:
            self._listening.cancel()
        port, self.port = self.port, None
        return port.stopListening() if port is not None else None

    def _listened(self, port: Any) -> None:
        self.port = port
        address = port.getHost()
        log.info(
            "HTTP API listening on {host}:{port}",
            host=getattr(address, "host", str(address)),
            port=getattr(address, "port", ""),
        )

    def _not_listening(self, failure: Failure) -> None:
        reason = failure_text(failure)
        self._failure = Failure(
            HttpListenError(
                f"the HTTP API cannot listen on {self.description}: {reason}"
            )
        )
