# Tests for cmppsvc.httpapi, cmppsvc.httpserver and cmppsvc.metrics.
"""The HTTP API: resources answered in memory against fakes and a Clock, the
listening service and its body bound, and a few requests over loopback to a
whole service with a private Redis and the simulator."""

from __future__ import annotations

import json
import socket
from io import BytesIO
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, FileBodyProducer, readBody
from twisted.web.http_headers import Headers
from twisted.web.test.requesthelper import DummyRequest

from cmppsvc import keys
from cmppsvc.demo import DEMO_HTTP
from cmppsvc.httpapi import MAX_BODY_BYTES, HttpApi, public_status
from cmppsvc.httpserver import HttpApiService, HttpListenError
from cmppsvc.metrics import exposition
from cmppsvc.tap import START_FAILED_STATUS, Options, ProcessCmppService
from tests.endtoend import (
    FIXTURE_CHANNELS,
    fixture_records,
    read_events,
    start_platform,
    wait_for,
)

CHANNEL, OTHER = FIXTURE_CHANNELS
SECRET = "Pw-7c41e9d2b8"
LOOPBACK_ANY_PORT = "tcp:0:interface=127.0.0.1"


def secret_records() -> list[tuple[str, bytes]]:
    """The fixture records, with a password no other text can contain."""
    return [
        (key, raw.replace(b'"passpwd":"123"', f'"passpwd":"{SECRET}"'.encode()))
        for key, raw in fixture_records()
    ]


# -- in-memory fakes -----------------------------------------------------------


class FakeRedis:
    """The few commands the API sends, on dicts; `hang` makes every command
    wait forever (Redis away), `error` makes it fail."""

    def __init__(self) -> None:
        self.strings: dict[str, Any] = {}
        self.hashes: dict[str, dict[str, str]] = {}
        self.streams: dict[str, list[list[str]]] = {}
        self.published: list[tuple[str, str]] = []
        self.hang = False
        self.error: Exception | None = None
        self.cancelled = 0

    def execute_command(self, name: str, *arguments: Any) -> defer.Deferred:
        if self.hang:
            return defer.Deferred(lambda _: self._count_cancel())
        if self.error is not None:
            return defer.fail(self.error)
        return defer.succeed(getattr(self, name.lower())(*arguments))

    def _count_cancel(self) -> None:
        self.cancelled += 1

    def get(self, key: str) -> Any:
        return self.strings.get(key)

    def exists(self, key: str) -> int:
        return int(key in self.strings)

    def hgetall(self, key: str) -> list[str]:
        return [item for pair in self.hashes.get(key, {}).items() for item in pair]

    def xadd(self, key: str, _star: str, *flat: str) -> str:
        entries = self.streams.setdefault(key, [])
        entries.append(list(flat))
        return f"{len(entries)}-0"

    def publish(self, channel: str, message: str) -> int:
        self.published.append((channel, message))
        return 1

    def sadd(self, key: str, member: str) -> int:
        return 1

    srem = sadd


class FakeLeases:
    def owner_of(self, channel_id: str) -> defer.Deferred:
        return defer.succeed("host:1234")


class FakeCollection:
    """Records the actions; `slow` makes them never end."""

    def __init__(self, redis: FakeRedis) -> None:
        self.redis = redis
        self.leases = FakeLeases()
        self.broken: dict[str, str] = {}
        self.actions: list[tuple[str, str]] = []
        self.slow = False

    def channel(self, channel_id: str) -> None:
        return None

    def read_statuses(self) -> defer.Deferred:
        if self.redis.hang:
            return defer.Deferred()
        statuses = []
        for key, fields in sorted(self.redis.hashes.items()):
            channel_id = key.split(":")[-1]
            statuses.append({**fields, "channel": channel_id, "owner": "host:1234"})
        return defer.succeed(statuses)

    def _action(self, action: str, channel_id: str) -> defer.Deferred:
        self.actions.append((action, channel_id))
        return defer.Deferred() if self.slow else defer.succeed(None)

    def start_channel(self, channel_id: str) -> defer.Deferred:
        return self._action("start", channel_id)

    def stop_channel(self, channel_id: str) -> defer.Deferred:
        return self._action("stop", channel_id)

    def reload_channel(self, channel_id: str) -> defer.Deferred:
        return self._action("reload", channel_id)


class FakeStores:
    def __init__(self, redis: FakeRedis) -> None:
        self.redis = redis


class FakeProcess:
    def __init__(self) -> None:
        self.redis = FakeRedis()
        self.collection: Any = FakeCollection(self.redis)
        self.stores: Any = FakeStores(self.redis)
        for key, raw in secret_records():
            self.redis.strings[key] = raw
        self.redis.hashes[keys.status(CHANNEL)] = {
            "channel": CHANNEL,
            "state": "running",
            "account": "100002",
            "submitted": "7",
            "connection_rate": "1000.0",
            "connection_last_error_code": "",
            "passpwd": SECRET,
            "api_token": SECRET,
        }


def dummy(method: str, path: str, body: bytes | None = None, **headers: str):
    request = DummyRequest([s.encode() for s in path.lstrip("/").split("/")])
    request.method = method.encode()
    if body is not None:
        request.content = BytesIO(body)
    for name, value in headers.items():
        request.requestHeaders.setRawHeaders(name, [value])
    return request


class ResourceTests(SynchronousTestCase):
    """Routing, answers and errors, in memory."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.process = FakeProcess()
        self.api = HttpApi(self.process, self.clock, answer_timeout=5)
        self.events: list[dict] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def answer(self, method: str, path: str, body: Any = None, **headers: str):
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
        request = dummy(method, path, body, **headers)
        self.api.render(request)
        return request

    def json(self, request) -> Any:
        self.assertTrue(request.finished)
        (content_type,) = request.responseHeaders.getRawHeaders("content-type")
        self.assertEqual(content_type, "application/json; charset=utf-8")
        return json.loads(b"".join(request.written))

    def assertError(self, request, status: int, field: str | None = None) -> dict:
        self.assertEqual(request.responseCode, status)
        body = self.json(request)
        self.assertIsInstance(body["error"], str)
        self.assertEqual(body.get("field"), field)
        return body

    def test_channel_status_with_numbers_and_no_secret(self):
        request = self.answer("GET", f"/channels/{CHANNEL}")
        self.assertEqual(request.responseCode, 200)
        status = self.json(request)
        self.assertEqual(status["submitted"], 7)
        self.assertEqual(status["connection_rate"], 1000.0)
        self.assertIsNone(status["connection_last_error_code"])
        self.assertEqual(status["account"], "100002")  # text stays text
        self.assertEqual(status["owner"], "host:1234")
        self.assertNotIn("passpwd", status)
        self.assertNotIn("api_token", status)
        self.assertNotIn(SECRET, b"".join(request.written).decode())

    def test_every_channel(self):
        body = self.json(self.answer("GET", "/channels/"))
        self.assertEqual([s["channel"] for s in body["channels"]], [CHANNEL])

    def test_unknown_channel_and_path(self):
        self.assertError(self.answer("GET", "/channels/42"), 404)
        self.assertError(self.answer("GET", "/channels/4*2"), 404)
        self.assertError(self.answer("GET", "/nothing"), 404)
        self.assertError(self.answer("POST", "/channels/42/start"), 404)
        self.assertError(self.answer("POST", "/channels/42/messages", {}), 404)
        self.assertError(self.answer("POST", f"/channels/{CHANNEL}/fly"), 404)

    def test_wrong_method(self):
        request = self.answer("GET", f"/channels/{CHANNEL}/stop")
        self.assertError(request, 405)
        self.assertEqual(request.responseHeaders.getRawHeaders("allow"), ["POST"])
        self.assertError(self.answer("DELETE", "/channels"), 405)
        self.assertError(self.answer("POST", "/metrics"), 405)

    def test_actions_call_the_collection(self):
        for action in ("stop", "start", "reload"):
            request = self.answer("POST", f"/channels/{CHANNEL}/{action}")
            self.assertEqual(request.responseCode, 200)
            self.assertEqual(
                self.json(request),
                {"channel": CHANNEL, "action": action, "done": True},
            )
        self.assertEqual(
            self.process.collection.actions,
            [("stop", CHANNEL), ("start", CHANNEL), ("reload", CHANNEL)],
        )
        # reload reaches every process, as the Redis command does
        ((channel, message),) = self.process.redis.published
        self.assertEqual(channel, keys.CONTROL)
        self.assertEqual(json.loads(message), {"action": "reload", "channel": CHANNEL})

    def test_a_slow_action_is_answered_202_and_goes_on(self):
        self.process.collection.slow = True
        request = self.answer("POST", f"/channels/{CHANNEL}/stop")
        self.assertFalse(request.finished)
        self.clock.advance(5)
        self.assertEqual(request.responseCode, 202)
        self.assertEqual(self.json(request)["done"], False)

    def test_a_page_in_a_browser_cannot_post(self):
        request = self.answer(
            "POST", f"/channels/{CHANNEL}/stop", Origin="http://evil.example"
        )
        self.assertError(request, 403)
        self.assertEqual(self.process.collection.actions, [])

    def test_message_added_to_the_stream(self):
        request = self.answer(
            "POST",
            f"/channels/{CHANNEL}/messages",
            {"to": ["13800000000", "13900000000"], "text": "你好", "id": "m-1"},
        )
        self.assertEqual(request.responseCode, 202)
        self.assertEqual(
            self.json(request), {"channel": CHANNEL, "entry_id": "1-0", "id": "m-1"}
        )
        (entry,) = self.process.redis.streams[keys.mt_stream(CHANNEL)]
        self.assertEqual(
            dict(zip(entry[::2], entry[1::2])),
            {"to": "13800000000,13900000000", "text": "你好", "id": "m-1"},
        )

    def test_message_id_is_the_entry_id_when_none_given(self):
        request = self.answer(
            "POST", f"/channels/{CHANNEL}/messages", {"to": "1380", "text": "a"}
        )
        self.assertEqual(self.json(request)["id"], "1-0")

    def test_bad_messages_name_the_field(self):
        path = f"/channels/{CHANNEL}/messages"
        good = {"to": "13800000000", "text": "hello"}
        for body, field in (
            (b"{not json", "body"),
            (b"[" * 100_000, "body"),
            ([1, 2], "body"),
            ({**good, "txt": "x"}, "txt"),
            ({**good, "to": 13800000000}, "to"),
            ({**good, "to": ["138", 139]}, "to"),
            ({"text": "x"}, "to"),
            ({**good, "to": "13800000000,abc"}, "to"),
            ({**good, "text": ""}, "text"),
            ({**good, "text": "x" * 501}, "text"),  # the record's wordsMaxlen
            ({**good, "text": "\ud800"}, "text"),
            ({**good, "ext": "1" * 13}, "ext"),  # the record's expidLen
            ({**good, "ext": "12a"}, "ext"),
            ({**good, "id": "i" * 129}, "id"),
        ):
            request = self.answer("POST", path, body)
            self.assertError(request, 400, field)
        self.assertNotIn(keys.mt_stream(CHANNEL), self.process.redis.streams)

    def test_a_broken_record_still_takes_messages(self):
        self.process.redis.strings[keys.channel_info(CHANNEL)] = b'{"account": 1}'
        request = self.answer(
            "POST", f"/channels/{CHANNEL}/messages", {"to": "138", "text": "x" * 600}
        )
        self.assertEqual(request.responseCode, 202)

    def test_body_too_large(self):
        request = self.answer(
            "POST", f"/channels/{CHANNEL}/messages", b" " * (MAX_BODY_BYTES + 1)
        )
        self.assertError(request, 413)

    def test_redis_not_answering_is_503_and_nothing_is_sent_later(self):
        self.process.redis.hang = True
        for method, path, body in (
            ("GET", "/channels", None),
            ("GET", f"/channels/{CHANNEL}", None),
            ("GET", "/metrics", None),
            ("POST", f"/channels/{CHANNEL}/messages", {"to": "1", "text": "a"}),
            ("POST", f"/channels/{CHANNEL}/stop", None),
        ):
            request = self.answer(method, path, body)
            self.assertFalse(request.finished)
            self.clock.advance(5)
            self.assertError(request, 503)
            self.assertEqual(
                request.responseHeaders.getRawHeaders("retry-after"), ["1"]
            )
        # the waiting commands were cancelled, not left to run later
        self.assertEqual(self.process.redis.cancelled, 3)
        self.assertEqual(self.process.collection.actions, [])

    def test_redis_connection_lost_is_503(self):
        from txredisapi import ConnectionError as RedisConnectionError

        self.process.redis.error = RedisConnectionError("Not connected")
        self.assertError(self.answer("GET", f"/channels/{CHANNEL}"), 503)

    def test_not_started_is_503(self):
        self.process.collection = None
        self.assertError(self.answer("GET", "/channels"), 503)

    def test_unexpected_error_is_500_and_logged(self):
        self.process.redis.error = RuntimeError("boom")
        self.assertError(self.answer("GET", f"/channels/{CHANNEL}"), 500)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_metrics(self):
        request = self.answer("GET", "/metrics")
        self.assertEqual(request.responseCode, 200)
        self.assertEqual(
            request.responseHeaders.getRawHeaders("content-type"),
            ["text/plain; version=0.0.4; charset=utf-8"],
        )
        text = b"".join(request.written).decode()
        self.assertIn(f'cmppsvc_submitted_total{{channel="{CHANNEL}"}} 7\n', text)
        self.assertNotIn(SECRET, text)

    def test_each_request_is_one_event_without_its_body(self):
        self.answer("POST", f"/channels/{CHANNEL}/messages", {"to": "1", "text": "zq"})
        self.answer("GET", "/nothing")
        ours = [e for e in self.events if e["log_namespace"] == "cmppsvc.httpapi"]
        self.assertEqual(
            [
                (e["method"], e["path"], e["status"], e["channel"], e["log_level"])
                for e in ours
            ],
            [
                ("POST", f"/channels/{CHANNEL}/messages", 202, CHANNEL, LogLevel.info),
                ("GET", "/nothing", 404, "", LogLevel.info),
            ],
        )
        for event in ours:
            self.assertNotIn("zq", formatEvent(event) + repr(event))

    def test_a_path_is_logged_printable_and_bounded(self):
        self.answer("GET", "/channels/a\nb" + "c" * 500)
        (event,) = [e for e in self.events if e["log_namespace"] == "cmppsvc.httpapi"]
        self.assertNotIn("\n", event["path"])
        self.assertLessEqual(len(event["path"]), 200)


class PublicStatusTests(SynchronousTestCase):
    def test_what_is_no_finite_number_stays_text(self):
        shown = public_status(
            {"submitted": "many", "connection_rate": "inf", "secret": "x"}
        )
        self.assertEqual(shown, {"submitted": "many", "connection_rate": "inf"})


class ExpositionTests(SynchronousTestCase):
    """The Prometheus text format, by hand."""

    def test_families_states_and_latencies(self):
        text = exposition(
            [
                {
                    "channel": 'a"b\\c',
                    "state": "running",
                    "connection_state": "ready",
                    "accepted": "3",
                    "connection_window_in_use": "2",
                    "subRsptime_count": "4",
                    "subRsptime_mean_ms": "2.5",
                    "subRsptime_p50_ms": "2",
                    "subRsptime_p90_ms": "3",
                    "subRsptime_p99_ms": "5",
                    "rspReptime_count": "0",
                    "owner": "h:1",
                    "passpwd": SECRET,
                },
                {"channel": "b", "state": "odd"},
            ]
        )
        lines = text.splitlines()
        self.assertTrue(text.endswith("\n"))
        label = 'channel="a\\"b\\\\c"'
        for line in (
            "# TYPE cmppsvc_accepted_total counter",
            f"cmppsvc_accepted_total{{{label}}} 3",
            "# TYPE cmppsvc_window_in_use gauge",
            f"cmppsvc_window_in_use{{{label}}} 2",
            f'cmppsvc_channel_state{{{label},state="running"}} 1',
            f'cmppsvc_channel_state{{{label},state="stopped"}} 0',
            'cmppsvc_channel_state{channel="b",state="odd"} 1',
            f'cmppsvc_connection_state{{{label},state="ready"}} 1',
            "# TYPE cmppsvc_submit_response_latency_seconds summary",
            f'cmppsvc_submit_response_latency_seconds{{{label},quantile="0.9"}} 0.003',
            f"cmppsvc_submit_response_latency_seconds_sum{{{label}}} 0.01",
            f"cmppsvc_submit_response_latency_seconds_count{{{label}}} 4",
            f"cmppsvc_response_report_latency_seconds_count{{{label}}} 0",
            f'cmppsvc_channel_info{{{label},owner="h:1",gateway="",version=""}} 1',
        ):
            self.assertIn(line, lines)
        # an empty histogram has no quantiles
        self.assertFalse(
            [line for line in lines if "response_report_latency_seconds{" in line]
        )
        self.assertNotIn(SECRET, text)

        # each family's samples follow its one TYPE line
        names = [line.split()[2] for line in lines if line.startswith("# TYPE")]
        self.assertEqual(len(names), len(set(names)))


class BodyBoundTests(SynchronousTestCase):
    """A body above the bound is refused while it arrives, never kept."""

    def connect(self):
        service = HttpApiService(LOOPBACK_ANY_PORT, FakeProcess(), Clock())
        protocol = service.site.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        return protocol, transport

    def test_a_declared_length_above_the_bound(self):
        protocol, transport = self.connect()
        protocol.dataReceived(
            f"POST /channels/{CHANNEL}/messages HTTP/1.1\r\nHost: x\r\n"
            f"Content-Length: {MAX_BODY_BYTES + 1}\r\n\r\n".encode()
        )
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 413 "))
        self.assertTrue(transport.disconnecting)
        protocol.dataReceived(b"x" * 10_000)  # ignored
        self.assertIn(b'"error"', transport.value())

    def test_a_chunked_body_growing_above_the_bound(self):
        protocol, transport = self.connect()
        protocol.dataReceived(
            f"POST /channels/{CHANNEL}/messages HTTP/1.1\r\nHost: x\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        chunk = b"x" * 65536
        for _ in range(5):
            protocol.dataReceived(b"10000\r\n" + chunk + b"\r\n")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 413 "))
        self.assertTrue(transport.disconnecting)

    def test_a_body_within_the_bound_is_answered(self):
        protocol, transport = self.connect()
        body = json.dumps({"to": "13800000000", "text": "hi"}).encode()
        protocol.dataReceived(
            f"POST /channels/{CHANNEL}/messages HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 202 "))
        self.assertFalse(transport.disconnecting)


class OptionTests(SynchronousTestCase):
    def parse(self, *arguments: str) -> Options:
        options = Options()
        options.parseOptions(list(arguments))
        return options

    def test_http_endpoint(self):
        self.assertIsNone(self.parse()["http"])
        self.assertEqual(self.parse("--http", "tcp:8080")["http"], "tcp:8080")
        self.assertEqual(self.parse("--demo")["http"], DEMO_HTTP)
        self.assertIn("interface=127.0.0.1", DEMO_HTTP)
        for bad in ("bogus:1", "tcp:port", "tcp"):
            with self.assertRaises(usage.UsageError, msg=bad):
                self.parse("--http", bad)


# -- over loopback, with the whole service --------------------------------------


@defer.inlineCallbacks
def http(port: int, method: str, path: str, body: Any = None, **headers: str):
    """One request to 127.0.0.1:port; fires with (status, headers, body)."""
    producer = None
    if body is not None:
        producer = FileBodyProducer(BytesIO(json.dumps(body).encode()))
    response = yield Agent(reactor).request(
        method.encode(),
        f"http://127.0.0.1:{port}{path}".encode(),
        Headers({name: [value] for name, value in headers.items()}),
        producer,
    )
    content = yield readBody(response)
    return response.code, response.headers, content


class EndToEndTests(TestCase):
    """The API of a running service, over a loopback TCP port."""

    timeout = 60

    @defer.inlineCallbacks
    def setUp(self):
        self.events: list[dict] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)
        self.platform = yield start_platform(
            self,
            records=secret_records(),
            http_endpoint=LOOPBACK_ANY_PORT,
            stop_timeout=0.5,
        )
        self.service = self.platform.service
        self.port = self.service.http.port.getHost().port
        self.bodies: list[bytes] = []
        yield wait_for(lambda: len(self.platform.simulator.logged_in()) == 2)

    @defer.inlineCallbacks
    def request(self, method: str, path: str, body: Any = None, **headers: str):
        status, response_headers, content = yield http(
            self.port, method, path, body, **headers
        )
        self.bodies.append(content)
        return status, response_headers, content

    @defer.inlineCallbacks
    def test_message_status_metrics_and_control(self):
        status, _, content = yield self.request(
            "POST",
            f"/channels/{CHANNEL}/messages",
            {"to": "13800000000", "text": "你好", "id": "http-1"},
        )
        self.assertEqual((status, json.loads(content)["id"]), (202, "http-1"))
        submit = yield wait_for(
            lambda: read_events(self.platform.redis).addCallback(
                lambda events: [
                    e for e in events if e["type"] == "submit" and e["id"] == "http-1"
                ]
            )
        )
        self.assertEqual(submit[0]["outcome"], "ok")

        status, _, content = yield self.request("GET", f"/channels/{CHANNEL}")
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(content)["state"], "running")
        status, _, content = yield self.request("GET", "/channels")
        channels = json.loads(content)["channels"]
        self.assertEqual([c["channel"] for c in channels], [CHANNEL, OTHER])
        self.assertEqual(channels[0]["owner"], self.service.owner)

        status, headers, content = yield self.request("GET", "/metrics")
        self.assertEqual(status, 200)
        running = f'cmppsvc_channel_state{{channel="{CHANNEL}",state="running"}} 1'
        self.assertIn(running, content.decode().splitlines())

        status, _, content = yield self.request("POST", f"/channels/{CHANNEL}/stop")
        self.assertEqual((status, json.loads(content)["done"]), (200, True))
        stopped = yield self.platform.redis.smembers(keys.STOPPED)
        self.assertEqual(set(stopped), {CHANNEL})
        self.assertIsNone(self.service.collection.channel(CHANNEL))

        status, _, _ = yield self.request("POST", f"/channels/{CHANNEL}/start")
        self.assertEqual(status, 200)
        self.assertIsNotNone(self.service.collection.channel(CHANNEL))
        status, _, _ = yield self.request("POST", f"/channels/{CHANNEL}/reload")
        self.assertEqual(status, 200)

        # one event per request, twisted.web's access log lines not added
        ours = [e for e in self.events if e.get("log_namespace") == "cmppsvc.httpapi"]
        self.assertEqual(len([e for e in ours if "status" in e]), len(self.bodies))
        self.assertFalse([e for e in self.events if "HTTP/1.1" in formatEvent(e)])

    @defer.inlineCallbacks
    def test_the_password_is_in_no_answer_and_no_log_line(self):
        redis = self.platform.redis
        # A refused record with the password, and a status field named like one
        broken = json.loads(secret_records()[0][1])
        broken.update(id="555", gatewayPort="not a port")
        yield redis.set(keys.channel_info("555"), json.dumps(broken))
        yield redis.hset(keys.status(CHANNEL), "password", SECRET)
        yield self.service.collection.reload_channel("555")
        yield self.service.stores.writer.flush()

        for method, path, body in (
            ("GET", "/channels", None),
            ("GET", f"/channels/{CHANNEL}", None),
            ("GET", "/channels/555", None),
            ("GET", "/metrics", None),
            ("POST", f"/channels/{CHANNEL}/messages", {"to": "x", "text": "a"}),
            ("POST", "/channels/555/messages", {"to": "1", "text": "a"}),
            ("POST", "/channels/555/reload", None),
            ("POST", f"/channels/{OTHER}/stop", None),
            ("POST", f"/channels/{OTHER}/start", None),
            ("GET", "/channels/nothing", None),
        ):
            yield self.request(method, path, body)

        broken_status = json.loads(self.bodies[2])
        self.assertEqual(broken_status["state"], "broken")
        self.assertIn("gatewayPort", broken_status["last_error"])
        for content in self.bodies:
            self.assertNotIn(SECRET, content.decode())
        self.assertGreater(len(self.events), 20)
        for event in self.events:
            text = formatEvent(event) + repr(event)
            if "log_failure" in event:
                text += event["log_failure"].getTraceback()
            self.assertNotIn(SECRET, text)

    @defer.inlineCallbacks
    def test_redis_away_is_503_then_back(self):
        self.service.http.site.resource.answer_timeout = 0.5
        yield self.platform.server.kill()
        status, _, content = yield self.request(
            "POST", f"/channels/{CHANNEL}/messages", {"to": "1380", "text": "lost"}
        )
        self.assertEqual(status, 503)
        self.assertIn("Redis", json.loads(content)["error"])

        yield self.platform.server.start()
        self.service.http.site.resource.answer_timeout = 10
        status, _, content = yield self.request(
            "POST", f"/channels/{CHANNEL}/messages", {"to": "1380", "text": "kept"}
        )
        self.assertEqual(status, 202)
        entries = yield self.platform.redis.execute_command(
            "XRANGE", keys.mt_stream(CHANNEL), "-", "+"
        )
        texts = [fields[fields.index("text") + 1] for _entry_id, fields in entries]
        self.assertNotIn("lost", texts)
        self.assertIn("kept", texts)


class ListeningTests(TestCase):
    """The endpoint's port taken: the process says so once, and ends."""

    timeout = 15

    @defer.inlineCallbacks
    def test_port_taken_ends_the_process(self):
        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        statuses: list[int] = []
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            service = ProcessCmppService(
                None,
                reactor,
                redis_directory=self.mktemp(),
                http_endpoint=f"tcp:{port}:interface=127.0.0.1",
                end=statuses.append,
            )
            service.startService()
            yield self.assertFailure(service.whenStarted(), HttpListenError)
            yield service.stopService()

        self.assertEqual(statuses, [START_FAILED_STATUS])
        self.assertIsNone(service.local_redis)  # Redis was not even started
        (line,) = [e for e in events if e["log_level"] >= LogLevel.warn]
        self.assertIn(f"tcp:{port}", str(line["reason"]))
        self.assertNotIn("log_failure", line)
