# The benchmarks' own helpers: figures are computed right, records parse.
"""Unit tests of bench/ helpers; the benchmarks themselves print figures and are
never run as timed tests."""

import json

from twisted.trial.unittest import SynchronousTestCase

from bench.all import BENCHMARKS
from bench.common import channel_record, conditions, percentile
from bench.engine import sequence_numbers
from bench.pipeline import command_stats, millis, xadd
from cmppsvc.config import parse_channel_record


class HelperTests(SynchronousTestCase):
    """Percentiles, INFO parsing, stream-id times, Sequence_Ids."""

    def test_percentile(self) -> None:
        values = [5.0, 1.0, 3.0, 2.0, 4.0]
        self.assertEqual(percentile(values, 0.5), 3.0)
        self.assertEqual(percentile(values, 0.99), 5.0)
        self.assertEqual(percentile(values, 0.0), 1.0)
        self.assertEqual(percentile([], 0.5), 0.0)

    def test_command_stats(self) -> None:
        info = (
            "# Commandstats\r\n"
            "cmdstat_eval:calls=12,usec=300,usec_per_call=25.00,rejected_calls=0\r\n"
            "cmdstat_hset:calls=7,usec=10,usec_per_call=1.43\r\n"
        )
        self.assertEqual(command_stats(info), {"eval": (12, 300), "hset": (7, 10)})

    def test_millis(self) -> None:
        self.assertEqual(millis("1796400271167-3"), 1796400271167)

    def test_sequence_numbers_wrap_and_never_zero(self) -> None:
        next_seq = sequence_numbers()
        self.assertEqual([next_seq(), next_seq()], [1, 2])

    def test_xadd_is_an_mt_entry(self) -> None:
        command = xadd(7)
        fields = dict(zip(command[3::2], command[4::2]))
        self.assertEqual(fields["id"], "m7")
        self.assertEqual(fields["to"], "13800000007")
        self.assertTrue(fields["text"])

    def test_conditions_name_the_machine(self) -> None:
        line = conditions()
        self.assertIn("Python", line)
        self.assertIn("CPUs", line)

    def test_every_benchmark_is_listed(self) -> None:
        names = list(dict.fromkeys(name for name, _ in BENCHMARKS))
        self.assertEqual(
            names, ["codec", "simulator", "engine", "pipeline", "rate", "scale"]
        )


class ChannelRecordTests(SynchronousTestCase):
    """The generated records are valid channel records on loopback."""

    def test_record_parses(self) -> None:
        raw = channel_record("9000000000000001", "200001", "pw", 7890, window=32)
        config = parse_channel_record("9000000000000001", raw)
        self.assertEqual(config.account, "200001")
        self.assertEqual(
            (config.gateway_host, config.gateway_port), ("127.0.0.1", 7890)
        )
        self.assertEqual(config.window, 32)
        self.assertGreater(config.rate, 10_000)
        self.assertFalse(config.windowstats)
        self.assertEqual(json.loads(raw)["passpwd"], "pw")
