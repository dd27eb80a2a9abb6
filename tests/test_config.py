# Tests for cmppsvc.config, cmppsvc.configschema, configfields and configtext.
"""Channel records: the two fixture records field by field, every refusal, the
password never shown, loose types accepted, and the fixture-text helpers."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
from twisted.trial.unittest import SynchronousTestCase

from cmppsvc.config import (
    DEFAULT_RATE,
    MAX_RECORD_BYTES,
    ChannelConfig,
    ChannelConfigError,
    parse_channel_record,
    parse_redis_cli_script,
    rewrite_record_gateway,
)
from cmppsvc.configschema import record_fields
from cmppsvc.configtext import split_redis_cli_arguments

FIXTURE = Path(__file__).parent / "fixtures" / "channel-info.redis"
DOCUMENT = Path(__file__).parent.parent / "docs" / "channel-record.md"

# A password that shows up nowhere else, so a leak cannot hide among other text.
SECRET = "s3cr3t-Pa55"


def fixture_records() -> dict[str, bytes]:
    """The fixture's records by channel id."""
    pairs = parse_redis_cli_script(FIXTURE.read_bytes())
    return {key.removeprefix("channel-info:"): value for key, value in pairs}


def minimal(**fields) -> bytes:
    """The smallest usable record, with `fields` added or replaced."""
    record = {"account": "900001", "gatewayIp": "127.0.0.1", "gatewayPort": 7890}
    record.update(fields)
    return json.dumps(record).encode()


class FixtureRecordTests(SynchronousTestCase):
    """Both records of tests/fixtures/channel-info.redis, every field."""

    def setUp(self):
        self.records = fixture_records()

    def test_both_records_are_loaded(self):
        self.assertEqual(sorted(self.records), ["7377309771234304", "7645731233987584"])

    def test_first_record(self):
        config = parse_channel_record(
            "7377309771234304", self.records["7377309771234304"]
        )
        expected = {
            "channel_id": "7377309771234304",
            "account": "100002",
            "password": "123",
            "corp_id": "100007",
            "service_id": "help",
            "gateway_service_id": "help",
            "number": "100002",
            "gateway_number": "100002",
            "expid_len": 12,
            "local_expid_len": 12,
            "gateway_host": "192.168.1.198",
            "gateway_port": 7777,
            "channel_host": "192.168.1.198",
            "channel_port": 7777,
            "local_port": 0,
            "speed": 1000.0,
            "send_rate": 1000.0,
            "words_len": 70,
            "words_max_len": 500,
            "msg_fmt": 8,
            "windowstats": True,
            "record_id": "7377309771234304",
            "record_channel_id": "7377309771234307",
            "channel_name": "100002",
            "channel_type": 1,
            "status": 4,
            "network": 1,
            "route_type": 0,
            "route_channel": "0",
            "record_type": 0,
            "is_province": 0,
            "area": "",
            "shield_area": "",
            "mobile_shield_area": "",
            "unicom_shield_area": "",
            "telecom_shield_area": "",
            "provider": "paas",
            "channel_provider": "paas",
            "tenant_id": "102019081399792",
            "balance": 0.0,
            "price": 10.0,
            "comments": "",
            "creator": "gotest",
            "updater": "admin",
            "create_date": 1574414203000,
            "update_date": 1575272167000,
        }
        self.assertFields(config, expected)

    def test_second_record(self):
        config = parse_channel_record(
            "7645731233987584", self.records["7645731233987584"]
        )
        provider = "\u6a21\u62df\u901a\u9053"  # 模拟通道, "simulated channel"
        expected = {
            "channel_id": "7645731233987584",
            "account": "100009",
            "password": "123",
            "corp_id": "100009",
            "service_id": "help",
            "gateway_service_id": "help",
            "number": "100009",
            "gateway_number": "100009",
            "expid_len": 12,
            "local_expid_len": 12,
            "gateway_host": "192.168.1.198",
            "gateway_port": 7777,
            "channel_host": "192.168.1.198",
            "channel_port": 7777,
            "local_port": 0,
            "speed": 1000.0,
            "send_rate": 1000.0,
            "words_len": 70,
            "words_max_len": 500,
            "msg_fmt": 8,
            "windowstats": False,
            "record_id": "7645731233987584",
            "record_channel_id": "7645731233987584",
            "channel_name": "100009",
            "channel_type": 1,
            "status": 4,
            "network": 1,
            "route_type": 0,
            "route_channel": "0",
            "record_type": 0,
            "is_province": 0,
            "area": "",
            "shield_area": "",
            "mobile_shield_area": "",
            "unicom_shield_area": "",
            "telecom_shield_area": "",
            "provider": provider,
            "channel_provider": provider,
            "tenant_id": "102019120480753",
            "balance": 0.0,
            "price": 10.0,
            "comments": provider,
            "creator": "xyweim",
            "updater": "admin",
            "create_date": 1575438150000,
            "update_date": 1575439930000,
        }
        self.assertFields(config, expected)

    def assertFields(self, config: ChannelConfig, expected: dict) -> None:
        """Every record field as expected, cmppsvc's own at their defaults."""
        defaults = {
            "cmpp_version": 0x20,
            "window": 16,
            "connections": 1,
            "response_timeout": 60.0,
            "attempts": 3,
            "heartbeat_interval": 180.0,
            "reports_wanted": True,
            "restart_policy": "resend",
            "fee_user_type": 2,
            "fee_type": "01",
            "fee_code": "000000",
            "msg_level": 0,
            "flow_control_retries": 30,
            "stop_timeout": 5.0,
            "udh16": False,
        }
        wanted = {**expected, **defaults}
        actual = attrs.asdict(config, recurse=False)
        self.assertEqual(dict(actual.pop("extra")), {})
        self.assertEqual(actual, wanted)

        self.assertEqual(config.rate, 1000.0)
        self.assertEqual(config.max_extension_length, 12)
        self.assertEqual(config.gateway_address, ("192.168.1.198", 7777))

    def test_every_fixture_field_is_known(self):
        """No field of the real records ends up in `extra`."""
        known = {field.metadata["record"] for field in record_fields()}
        for raw in self.records.values():
            self.assertEqual(set(json.loads(raw)) - known, set())

    def test_every_field_is_documented(self):
        """docs/channel-record.md has a row for every record field."""
        if not DOCUMENT.exists():
            self.skipTest("docs/channel-record.md is missing")
        document = DOCUMENT.read_text(encoding="utf-8")
        for field in record_fields():
            self.assertIn(f"| `{field.metadata['record']}` |", document)
            self.assertTrue(field.metadata["doc"])


class RefusalTests(SynchronousTestCase):
    """Records that cannot be used raise ChannelConfigError naming the field."""

    def assertRefused(self, raw, field: str, reason_part: str) -> None:
        error = self.assertRaises(ChannelConfigError, parse_channel_record, "c1", raw)
        self.assertIsInstance(error, ValueError)
        self.assertEqual(error.channel_id, "c1")
        self.assertEqual(error.field, field)
        self.assertIn(reason_part, error.reason)
        self.assertTrue(str(error).startswith(f"channel c1: {field}: "))

    def test_bad_json(self):
        self.assertRefused(b'{"account": ', "record", "not valid JSON")

    def test_not_utf8(self):
        self.assertRefused(b'{"account": "\xff"}', "record", "not UTF-8")

    def test_not_an_object(self):
        self.assertRefused(b"[1, 2]", "record", "must be a JSON object, got array")
        self.assertRefused(b'"text"', "record", "got string")

    def test_missing_record(self):
        self.assertRefused(None, "record", "missing")

    def test_nan_is_not_json(self):
        self.assertRefused(minimal(price=float("nan")), "record", "NaN")

    def test_deep_nesting(self):
        self.assertRefused(b"[" * 30_000 + b"]" * 30_000, "record", "JSON")

    def test_oversized_record(self):
        padding = "x" * MAX_RECORD_BYTES
        self.assertRefused(minimal(comments=padding), "record", "longer than")
        self.assertRefused(minimal(comments=padding).decode(), "record", "longer")

    def test_missing_gateway(self):
        raw = json.dumps({"account": "900001", "gatewayPort": 7890})
        self.assertRefused(raw, "gatewayIp", "missing")
        raw = json.dumps({"account": "900001", "gatewayIp": "127.0.0.1"})
        self.assertRefused(raw, "gatewayPort", "missing")

    def test_empty_gateway(self):
        self.assertRefused(minimal(gatewayIp=""), "gatewayIp", "empty")
        self.assertRefused(minimal(gatewayIp="  "), "gatewayIp", "empty")
        self.assertRefused(minimal(gatewayPort=""), "gatewayPort", "empty")
        self.assertRefused(minimal(gatewayPort=None), "gatewayPort", "null")

    def test_bad_gateway_host(self):
        self.assertRefused(minimal(gatewayIp="a b"), "gatewayIp", "not a host")

    def test_missing_account(self):
        raw = json.dumps({"gatewayIp": "127.0.0.1", "gatewayPort": 7890})
        self.assertRefused(raw, "account", "missing")
        self.assertRefused(minimal(account="1234567"), "account", "at most 6")

    def test_wrong_types(self):
        self.assertRefused(minimal(gatewayPort=True), "gatewayPort", "boolean")
        self.assertRefused(minimal(gatewayPort="77x"), "gatewayPort", "'77x'")
        self.assertRefused(minimal(speed=[1]), "speed", "got array")
        self.assertRefused(minimal(windowstats="maybe"), "windowstats", "true or")
        self.assertRefused(minimal(number="10a"), "number", "digits")
        self.assertRefused(minimal(corpid={"a": 1}), "corpid", "got object")
        self.assertRefused(minimal(channelName=1.5), "channelName", "got number")

    def test_out_of_range(self):
        self.assertRefused(minimal(gatewayPort=0), "gatewayPort", "out of range")
        self.assertRefused(minimal(gatewayPort=65536), "gatewayPort", "1..65535")
        self.assertRefused(minimal(localPort=-1), "localPort", "out of range")
        self.assertRefused(minimal(window=0), "window", "1..1024")
        self.assertRefused(minimal(window=1025), "window", "1..1024")
        self.assertRefused(minimal(connections=65), "connections", "1..64")
        self.assertRefused(minimal(speed=-1), "speed", "out of range")
        self.assertRefused(minimal(wordsLen=0), "wordsLen", "out of range")
        self.assertRefused(minimal(expidLen=22), "expidLen", "out of range")
        self.assertRefused(minimal(msgformat=4), "msgformat", "not one of 0, 8, 15")
        self.assertRefused(minimal(cmppVersion=0x31), "cmppVersion", "not 32")
        self.assertRefused(minimal(serviceid="x" * 11), "serviceid", "at most 10")
        self.assertRefused(minimal(feeType="07"), "feeType", "must be one of")
        self.assertRefused(minimal(restartPolicy="x"), "restartPolicy", "resend")

    def test_huge_numeric_string(self):
        self.assertRefused(minimal(window="1" * 5000), "window", "integer")


class PasswordTests(SynchronousTestCase):
    """The password never leaves the config object."""

    def test_not_in_repr_str_or_public_fields(self):
        config = parse_channel_record("c1", minimal(passpwd=SECRET))
        self.assertEqual(config.password, SECRET)
        self.assertNotIn(SECRET, repr(config))
        self.assertNotIn(SECRET, str(config))
        shown = config.public_fields()
        self.assertNotIn("passpwd", shown)
        self.assertNotIn(SECRET, json.dumps(shown))
        self.assertNotIn(SECRET, repr(config.with_gateway("127.0.0.1", 1)))

    def test_not_in_errors(self):
        for value in ([SECRET], {SECRET: 1}, SECRET * 100, True):
            error = self.assertRaises(
                ChannelConfigError,
                parse_channel_record,
                "c1",
                minimal(passpwd=value),
            )
            self.assertEqual(error.field, "passpwd")
            self.assertNotIn(SECRET, str(error))
            self.assertNotIn(SECRET, repr(error))

    def test_not_in_errors_of_other_fields(self):
        # The password typed into the wrong field as well: the refused value
        # is quoted in the reason, the password blanked out of it.
        for field, value in (
            ("cmppVersion", SECRET),
            ("restartPolicy", f"x{SECRET}y"),
            ("gatewayPort", SECRET),
        ):
            error = self.assertRaises(
                ChannelConfigError,
                parse_channel_record,
                "c1",
                minimal(passpwd=SECRET, **{field: value}),
            )
            self.assertEqual(error.field, field)
            self.assertNotIn(SECRET, str(error))
            self.assertIn("***", error.reason)

    def test_not_in_json_errors(self):
        raw = b'{"passpwd": "' + SECRET.encode() + b'", "account": }'
        error = self.assertRaises(ChannelConfigError, parse_channel_record, "c", raw)
        self.assertNotIn(SECRET, str(error))

    def test_credential_like_unknown_fields_are_hidden(self):
        config = parse_channel_record("c1", minimal(apiPassword=SECRET, apiKey=SECRET))
        self.assertEqual(config.extra["apiPassword"], SECRET)
        self.assertNotIn(SECRET, repr(config))
        self.assertNotIn(SECRET, json.dumps(config.public_fields()))


class LooseTypeTests(SynchronousTestCase):
    """Spellings the admin system uses are accepted."""

    def test_numbers_as_strings(self):
        config = parse_channel_record(
            "c1",
            minimal(
                gatewayPort="7890",
                balance="-12.5",
                price="10",
                speed="200",
                window=" 32 ",
                responseTimeout="2.5",
            ),
        )
        self.assertEqual(config.gateway_port, 7890)
        self.assertEqual(config.balance, -12.5)
        self.assertEqual(config.price, 10.0)
        self.assertEqual(config.speed, 200.0)
        self.assertEqual(config.window, 32)
        self.assertEqual(config.response_timeout, 2.5)

    def test_codes_as_numbers(self):
        config = parse_channel_record(
            "c1", minimal(corpid=100007, number=106588, account=900001)
        )
        self.assertEqual(config.corp_id, "100007")
        self.assertEqual(config.number, "106588")
        self.assertEqual(config.account, "900001")

    def test_booleans(self):
        for value, expected in [
            (True, True),
            ("true", True),
            ("TRUE", True),
            (1, True),
            ("1", True),
            (False, False),
            ("false", False),
            (0, False),
            ("0", False),
        ]:
            config = parse_channel_record("c1", minimal(windowstats=value))
            self.assertIs(config.windowstats, expected, value)

    def test_versions(self):
        for value, expected in [
            (32, 0x20),
            (33, 0x21),
            (48, 0x30),
            ("48", 0x30),
            ("3.0", 0x30),
            ("0x21", 0x21),
        ]:
            config = parse_channel_record("c1", minimal(cmppVersion=value))
            self.assertEqual(config.cmpp_version, expected)

    def test_registered_delivery_alias(self):
        config = parse_channel_record("c1", minimal(registeredDelivery=0))
        self.assertFalse(config.reports_wanted)
        config = parse_channel_record(
            "c1", minimal(registeredDelivery=0, reportsWanted=True)
        )
        self.assertTrue(config.reports_wanted)

    def test_bytes_and_text(self):
        raw = minimal(provider="\u6a21\u62df")
        self.assertEqual(
            parse_channel_record("c1", raw), parse_channel_record("c1", raw.decode())
        )


class DefaultsAndDerivedTests(SynchronousTestCase):
    """Defaults of absent fields and the values derived from several fields."""

    def test_defaults(self):
        config = parse_channel_record("c1", minimal())
        self.assertEqual(config.password, "")
        self.assertEqual(config.msg_fmt, 8)
        self.assertEqual(config.words_len, 70)
        self.assertEqual(config.words_max_len, 500)
        self.assertEqual(config.rate, DEFAULT_RATE)
        self.assertEqual(config.corp_id, "900001")
        self.assertEqual(config.expid_len, 0)
        self.assertEqual(config.extra, {})

    def test_rate_is_the_lower_non_zero(self):
        for speed, send_rate, rate in [
            (0, 0, DEFAULT_RATE),
            (50, 0, 50.0),
            (0, 70, 70.0),
            (50, 70, 50.0),
            (900, 300, 300.0),
        ]:
            config = parse_channel_record(
                "c1", minimal(speed=speed, sendRate=send_rate)
            )
            self.assertEqual(config.rate, rate)

    def test_fallbacks(self):
        config = parse_channel_record(
            "c1",
            minimal(serviceid="", gatewayServiceId="MXX0001", gatewayNomber="1065"),
        )
        self.assertEqual(config.service_id, "MXX0001")
        self.assertEqual(config.number, "1065")

    def test_extension_never_overflows_src_id(self):
        config = parse_channel_record(
            "c1", minimal(number="1065801234567890", expidLen=12)
        )
        self.assertEqual(config.max_extension_length, 5)

    def test_unknown_fields_are_kept(self):
        config = parse_channel_record(
            "c1", minimal(futureField={"a": [1, 2]}, another="x")
        )
        self.assertEqual(
            dict(config.extra), {"futureField": {"a": [1, 2]}, "another": "x"}
        )
        self.assertEqual(config.public_fields()["another"], "x")
        self.assertIn("futureField", repr(config))

    def test_public_fields_use_record_names(self):
        config = parse_channel_record("c1", minimal())
        shown = config.public_fields()
        self.assertEqual(shown["channel"], "c1")
        self.assertEqual(shown["gatewayIp"], "127.0.0.1")
        self.assertEqual(shown["cmppVersion"], 0x20)
        self.assertEqual(shown["rate"], DEFAULT_RATE)
        json.dumps(shown)


class GatewayRewriteTests(SynchronousTestCase):
    """Pointing a channel at a local simulator."""

    def test_with_gateway(self):
        config = parse_channel_record("c1", fixture_records()["7377309771234304"])
        moved = config.with_gateway("127.0.0.1", 17890)
        self.assertEqual(moved.gateway_address, ("127.0.0.1", 17890))
        self.assertEqual((moved.channel_host, moved.channel_port), ("127.0.0.1", 17890))
        self.assertEqual(
            attrs.evolve(moved, gateway_host="192.168.1.198"),
            attrs.evolve(
                config, gateway_port=17890, channel_host="127.0.0.1", channel_port=17890
            ),
        )

    def test_with_gateway_validates(self):
        config = parse_channel_record("c1", minimal())
        error = self.assertRaises(ChannelConfigError, config.with_gateway, "", 1)
        self.assertEqual(error.field, "gatewayIp")
        error = self.assertRaises(ChannelConfigError, config.with_gateway, "h", 0)
        self.assertEqual(error.field, "gatewayPort")

    def test_rewrite_changes_only_the_gateway(self):
        for channel_id, raw in fixture_records().items():
            rewritten = rewrite_record_gateway(raw, "127.0.0.1", 17890)
            before, after = json.loads(raw), json.loads(rewritten)
            for name in ("gatewayIp", "channelIp"):
                self.assertEqual(after.pop(name), "127.0.0.1")
                before.pop(name)
            for name in ("gatewayPort", "channelPort"):
                self.assertEqual(after.pop(name), 17890)
                before.pop(name)
            self.assertEqual(after, before)
            self.assertEqual(list(json.loads(rewritten)), list(json.loads(raw)))

            # Byte for byte: only the old address text was replaced.
            expected = raw.replace(b'"192.168.1.198"', b'"127.0.0.1"').replace(
                b":7777", b":17890"
            )
            self.assertEqual(rewritten, expected)
            config = parse_channel_record(channel_id, rewritten)
            self.assertEqual(config.gateway_address, ("127.0.0.1", 17890))

    def test_rewrite_keeps_spacing_and_escapes(self):
        raw = b'{ "a" : "\\u6a21" , "gatewayIp" : "x" ,"gatewayPort":1, "b":1.50 }'
        self.assertEqual(
            rewrite_record_gateway(raw, "::1", 2),
            b'{ "a" : "\\u6a21" , "gatewayIp" : "::1" ,"gatewayPort":2, "b":1.50 }',
        )

    def test_rewrite_adds_missing_gateway(self):
        self.assertEqual(
            json.loads(rewrite_record_gateway(b'{"a":1}', "127.0.0.1", 9)),
            {"a": 1, "gatewayIp": "127.0.0.1", "gatewayPort": 9},
        )
        self.assertEqual(
            json.loads(rewrite_record_gateway(b"{}", "h", 9)),
            {"gatewayIp": "h", "gatewayPort": 9},
        )

    def test_rewrite_refuses_garbage(self):
        for raw in (b"[]", b'{"a":}', b'{"a":1} x', b"\xff"):
            self.assertRaises(ValueError, rewrite_record_gateway, raw, "h", 1)
        self.assertRaises(ValueError, rewrite_record_gateway, b"{}", "h", 0)
        self.assertRaises(ValueError, rewrite_record_gateway, b"{}", "", 1)


class RedisCliScriptTests(SynchronousTestCase):
    """The redis-cli quoting of fixture scripts."""

    def test_fixture_values_are_utf8_json(self):
        records = fixture_records()
        provider = json.loads(records["7645731233987584"])["provider"]
        self.assertEqual(provider, "\u6a21\u62df\u901a\u9053")

    def test_escapes(self):
        line = rb'set k "a\"b\\c\x41\xe6\x9c\n\r\t\b\a\q" ' + b"'it\\'s \\n'"
        self.assertEqual(
            split_redis_cli_arguments(line),
            [b"set", b"k", b'a"b\\cA\xe6\x9c\n\r\t\b\aq', b"it's \\n"],
        )

    def test_bare_words_and_blank_lines(self):
        script = b"\r\n  SET   key  value\r\n\n"
        self.assertEqual(parse_redis_cli_script(script), [("key", b"value")])

    def test_refusals(self):
        for script in (
            b'set k "unterminated',
            b"set k 'unterminated",
            b'set k "a"b',
            b"get k",
            b"set k v EX 10",
            b"set \xff v",
        ):
            error = self.assertRaises(ValueError, parse_redis_cli_script, script)
            self.assertIn("line 1", str(error))
