# test-case-name: tests.test_simulator_parts
"""The simulator's small parts: accounts, Msg_Id allocation, twistd options."""

import time

from twisted.application.service import IServiceMaker
from twisted.internet.task import Clock
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from cmppsvc.codec.msgid import parse_msg_id
from cmppsvc.simulator import (
    SUPPORTED_VERSIONS,
    Accounts,
    Behaviour,
    MsgIdAllocator,
    parse_account,
)
from cmppsvc.simulator.mo import split_mo
from cmppsvc.simulator.tap import Options, SimulatorService, loopback_only, makeService


class AccountsTests(SynchronousTestCase):
    """ACCOUNT:PASSWORD parsing keeps the password out of every text."""

    def test_parse(self) -> None:
        accounts = Accounts.parse(["100002:secret", "100003:a:b"])
        self.assertEqual(accounts.password("100002"), "secret")
        self.assertEqual(accounts.password("100003"), "a:b")
        self.assertIsNone(accounts.password("100004"))
        self.assertEqual(repr(accounts), "<Accounts 100002, 100003>")

    def test_bad_option_hides_password(self) -> None:
        error = self.assertRaises(ValueError, parse_account, "100002secret")
        self.assertNotIn("secret", str(error).replace("100002secret", ""))
        self.assertRaises(ValueError, parse_account, "100002:")

    def test_account_too_long(self) -> None:
        self.assertRaises(ValueError, Accounts, {"1234567": "x"})


class MsgIdAllocatorTests(SynchronousTestCase):
    """Msg_Ids carry the clock time and stay unique past 65,536 a second."""

    def test_fields(self) -> None:
        clock = Clock()
        clock.advance(1_764_000_000)
        msg_id = MsgIdAllocator(clock, gateway_code=79101).allocate()
        fields = parse_msg_id(msg_id)
        moment = time.localtime(1_764_000_000)
        self.assertEqual(
            fields[:5],
            (
                moment.tm_mon,
                moment.tm_mday,
                moment.tm_hour,
                moment.tm_min,
                moment.tm_sec,
            ),
        )
        self.assertEqual((fields.gateway, fields.sequence), (79101, 0))

    def test_unique_past_one_second_of_sequence(self) -> None:
        clock = Clock()
        allocator = MsgIdAllocator(clock)
        identities = [allocator.allocate() for _ in range(200_000)]
        self.assertEqual(len(set(identities)), 200_000)
        # The seconds field ran ahead of the clock; one real second later the
        # allocator continues after its own lead, never behind it.
        clock.advance(1)
        self.assertNotIn(allocator.allocate(), set(identities))

    def test_range_never_wraps(self) -> None:
        allocator = MsgIdAllocator(Clock())
        for _ in range(65_530):
            allocator.allocate()
        first = allocator.allocate(10)
        self.assertEqual(parse_msg_id(first).sequence, 0)
        self.assertEqual(parse_msg_id(first + 9).sequence, 9)

    def test_gateway_code_bounds(self) -> None:
        self.assertRaises(ValueError, MsgIdAllocator, Clock(), 1 << 22)


class SplitTests(SynchronousTestCase):
    """The simulator's own MO split."""

    def test_surrogate_pair_not_cut(self) -> None:
        text = "a" * 66 + "\U0001f600" + "b" * 10
        segments = split_mo(text, 8, 7)
        self.assertEqual(len(segments), 2)
        self.assertEqual(segments[0][6:].decode("utf-16-be"), "a" * 66)

    def test_short_message_has_no_udh(self) -> None:
        self.assertEqual(split_mo("hi", 0, 1), [b"hi"])


class OptionsTests(SynchronousTestCase):
    """twistd cmppsim options."""

    def test_options(self) -> None:
        options = Options()
        options.parseOptions(
            [
                "--listen",
                "tcp:0",
                "--account",
                "100002:secret",
                "-a",
                "100003:other",
                "--report-delay",
                "0",
                "--flow-control-rate",
                "50",
                "--ignore-heartbeats",
                "--versions",
                "20,30",
            ]
        )
        self.assertEqual(options["listen"], "tcp:0:interface=127.0.0.1")
        self.assertEqual(
            options["accounts"], [("100002", "secret"), ("100003", "other")]
        )
        behaviour = options["behaviour"]
        self.assertEqual(
            (behaviour.report_delay, behaviour.flow_control_rate), (0.0, 50.0)
        )
        self.assertTrue(behaviour.ignore_heartbeats)
        self.assertEqual(options["versions"], frozenset({0x20, 0x30}))
        self.assertIsInstance(makeService(options), SimulatorService)

    def test_defaults(self) -> None:
        options = Options()
        options.parseOptions(["--account", "100002:secret"])
        self.assertEqual(options["listen"], "tcp:7890:interface=127.0.0.1")
        service = makeService(options)
        self.assertEqual(service.factory.versions, SUPPORTED_VERSIONS)
        self.assertEqual(service.factory.behaviour, Behaviour())

    def test_bad_report_stat(self) -> None:
        self.assertRaises(ValueError, Behaviour, report_stat="DELIVERED")

    def test_accounts_file(self) -> None:
        path = self.mktemp()
        with open(path, "w", encoding="utf-8") as accounts:
            accounts.write("# bench accounts\n100002:secret\n\n100003:other\n")
        options = Options()
        options.parseOptions(["--accounts-file", path, "--account", "100004:x"])
        self.assertEqual(
            options["accounts"],
            [("100002", "secret"), ("100003", "other"), ("100004", "x")],
        )

    def test_bad_accounts_file_hides_password(self) -> None:
        path = self.mktemp()
        with open(path, "w", encoding="utf-8") as accounts:
            accounts.write("100002:secret\n:hunter2\n")
        error = self.assertRaises(
            usage.UsageError, Options().parseOptions, ["--accounts-file", path]
        )
        self.assertIn("line 2", str(error))
        self.assertNotIn("hunter2", str(error))
        self.assertRaises(
            usage.UsageError,
            Options().parseOptions,
            ["--accounts-file", path + ".missing"],
        )

    def test_account_required(self) -> None:
        self.assertRaises(usage.UsageError, Options().parseOptions, [])

    def test_bad_account_hides_password(self) -> None:
        error = self.assertRaises(
            usage.UsageError, Options().parseOptions, ["--account", ":hunter2"]
        )
        self.assertNotIn("hunter2", str(error))

    def test_negative_delay_refused(self) -> None:
        self.assertRaises(
            usage.UsageError,
            Options().parseOptions,
            ["--account", "1:x", "--report-delay", "-1"],
        )

    def test_help_documents_misbehaviours(self) -> None:
        text = str(Options())
        for option in (
            "--response-delay",
            "--drop-with-full-window",
            "--flow-control-rate",
            "--ignore-heartbeats",
            "--terminate-after-submits",
            "--terminate-after-seconds",
            "--submit-result",
            "--account",
        ):
            self.assertIn(option, text)

    def test_loopback_only(self) -> None:
        self.assertEqual(loopback_only("tcp:7890"), "tcp:7890:interface=127.0.0.1")
        self.assertEqual(
            loopback_only("tcp:7890:interface=::1"), "tcp:7890:interface=::1"
        )
        self.assertEqual(loopback_only("unix:/tmp/x"), "unix:/tmp/x")

    def test_plugin_found(self) -> None:
        import twisted.plugins

        names = [maker.tapname for maker in getPlugins(IServiceMaker, twisted.plugins)]
        self.assertIn("cmppsim", names)
