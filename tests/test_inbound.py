# Tests for cmppsvc.inbound: reports matched early, late, twice, anywhere.
"""Status reports against a real Msg_Id index (real redis-server): matched
before the index write is done, matched by another process's flow, and a
second report for the same Msg_Id recognised as a duplicate."""

from twisted.internet import defer, reactor
from twisted.trial import unittest

from cmppsvc.events import EventWriter
from cmppsvc.inbound import InboundFlow
from cmppsvc.latency import LatencyHistogram
from cmppsvc.msgindex import MsgIdIndex
from cmppsvc.simulator.mo import report_deliver
from cmppsvc.writebehind import WriteBehind
from tests.endtoend import read_events, wait_for
from tests.redisserver import open_connection, start_redis

MSG_ID = 0x1234567890ABCDEF
ENTRY = {"id": "m1", "channel": "c1", "to": "13800000000", "segment": 2}


class InboundReportTests(unittest.TestCase):
    """Reports in, report events out."""

    timeout = 30

    @defer.inlineCallbacks
    def setUp(self):
        self.server, self.redis = yield start_redis(self, persistent=False)
        self.writer = WriteBehind(self.redis, reactor)
        self.addCleanup(self.writer.stop)
        self.index = MsgIdIndex(self.writer, self.redis, reactor)
        self.histogram = LatencyHistogram()
        self.flow = InboundFlow(
            "c1",
            reactor,
            self.index,
            EventWriter(self.writer),
            self.histogram,
            log_each=False,
        )

    def deliver(self, flow=None):
        report = report_deliver(1, MSG_ID, "13800000000", "DELIVRD", 0.0, 0.0)
        (flow or self.flow).deliver_received(report)

    @defer.inlineCallbacks
    def reports(self, count):
        def enough():
            return read_events(self.redis).addCallback(
                lambda events: (
                    [e for e in events if e["type"] == "report"]
                    if self.flow.counters["reports"]
                    + self.flow.counters["duplicate_reports"]
                    >= count
                    else None
                )
            )

        yield wait_for(enough)
        yield self.writer.flush()
        events = yield read_events(self.redis)
        return [e for e in events if e["type"] == "report"]

    @defer.inlineCallbacks
    def test_report_before_the_index_write_is_matched_and_duplicate_ignored(self):
        self.index.put(MSG_ID, dict(ENTRY, answered=reactor.seconds()))
        self.deliver()  # the index write is still queued
        self.deliver()
        reports = yield self.reports(2)
        self.assertEqual(len(reports), 1)
        (report,) = reports
        self.assertEqual((report["id"], report["matched"]), ("m1", "1"))
        self.assertEqual(report["segment"], "2")
        self.assertEqual(self.flow.counters["duplicate_reports"], 1)
        self.assertEqual(self.histogram.count, 1, "kept without windowstats")

    @defer.inlineCallbacks
    def test_report_received_by_another_process_is_matched(self):
        self.index.put(MSG_ID, dict(ENTRY, answered=reactor.seconds()))
        yield self.writer.flush()

        other_redis = open_connection(self, self.server)
        other_writer = WriteBehind(other_redis, reactor)
        self.addCleanup(other_writer.stop)
        other = InboundFlow(
            "c1",
            reactor,
            MsgIdIndex(other_writer, other_redis, reactor),
            EventWriter(other_writer),
            LatencyHistogram(),
            log_each=True,
        )
        self.deliver(other)
        self.deliver()  # and once more here: a duplicate across processes
        yield wait_for(
            lambda: (
                other.counters["reports"]
                + self.flow.counters["duplicate_reports"]
                + other.counters["duplicate_reports"]
                + self.flow.counters["reports"]
                >= 2
            )
        )
        yield other_writer.flush()
        yield self.writer.flush()
        events = yield read_events(self.redis)
        reports = [e for e in events if e["type"] == "report"]
        self.assertEqual(len(reports), 1)
        self.assertEqual(reports[0]["matched"], "1")
