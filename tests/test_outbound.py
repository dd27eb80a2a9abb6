# Tests for cmppsvc.outbound: parts recorded before sending, outcomes atomic.
"""The MT flow with an in-memory writer and connector: what is written, in
which atomic item, and what a restart does with recorded parts."""

from __future__ import annotations

import json

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from cmppsvc import keys
from cmppsvc.config import parse_channel_record
from cmppsvc.connector import ChannelStopped, SubmitOutcome, SubmitUnknown
from cmppsvc.events import EventWriter
from cmppsvc.inflight import InFlightStore, part_field
from cmppsvc.latency import LatencyHistogram
from cmppsvc.mtqueue import ack_command
from cmppsvc.outbound import OutboundFlow, concatenation_reference
from cmppsvc.recovery import RESEND, UNKNOWN, Recovered
from tests.endtoend import fixture_records

LONG_TEXT = "长" * 150  # three segments


class FakeWriter:
    """Records every queued item; writes complete when the test says so."""

    def __init__(self) -> None:
        self.items: list[tuple] = []
        self.written = 0
        self.waiting: list[tuple[int, defer.Deferred]] = []

    def queue(self, *command) -> int:
        self.items.append((command,))
        return len(self.items)

    def queue_together(self, *commands) -> int:
        self.items.append(commands)
        return len(self.items)

    def when_written(self, serial: int) -> defer.Deferred:
        d = defer.Deferred()
        self.waiting.append((serial, d))
        return d

    def write_all(self) -> None:
        self.written = len(self.items)
        waiting, self.waiting = self.waiting, []
        for _serial, d in waiting:
            d.callback(None)

    def commands(self, name: str) -> list[tuple]:
        return [c for item in self.items for c in item if c[0] == name]


class FakeConnector:
    """Hands out Sequence_Ids and keeps each submit's Deferred."""

    def __init__(self) -> None:
        self.submits: list[tuple] = []
        self.seq = 100

    def submit(self, pdu, seq_assigned):
        self.seq += 1
        seq_assigned(self.seq)
        d = defer.Deferred()
        self.submits.append((pdu, self.seq, d))
        return d

    def submit_with_callbacks(self, pdu, answered, failed, seq_assigned):
        d = self.submit(pdu, seq_assigned)
        d.addCallbacks(answered, lambda failure: failed(failure.value))

    def answer(self, index: int, msg_id: int = 7, result: int = 0) -> None:
        _pdu, seq, d = self.submits[index]
        d.callback(SubmitOutcome(seq, msg_id, result, "ok", 1.0, 1.5, 1))


class FakeIndex:
    def __init__(self) -> None:
        self.entries: dict[int, dict] = {}

    def put(self, msg_id: int, entry: dict) -> None:
        self.entries[msg_id] = entry

    def put_commands(self, msg_id: int, entry: dict) -> tuple:
        # In memory only: nothing to queue with the outcome.
        self.entries[msg_id] = entry
        return ()

    def queued(self, msg_id: int, serial: int) -> None:
        pass


def _config():
    key, raw = fixture_records()[0]
    return parse_channel_record(key.split(":", 1)[1], raw)


def _event_fields(command: tuple) -> dict:
    flat = command[6:]
    return dict(zip(flat[0::2], flat[1::2], strict=True))


class OutboundTests(SynchronousTestCase):
    """One channel's MT flow."""

    def setUp(self) -> None:
        self.config = _config()
        self.channel = self.config.channel_id
        self.writer = FakeWriter()
        self.connector = FakeConnector()
        self.index = FakeIndex()
        self.inflight = InFlightStore(self.writer, None, self.channel)

    def flow(
        self, recovered: Recovered | None = None, room_available=None
    ) -> OutboundFlow:
        return OutboundFlow(
            self.config,
            self.connector,
            Clock(),
            self.inflight,
            self.index,
            EventWriter(self.writer),
            lambda entry_id: ack_command(self.channel, [entry_id]),
            LatencyHistogram(),
            False,
            recovered,
            room_available,
        )

    def test_recorded_before_sent_then_event_and_ack_together(self):
        flow = self.flow()
        flow.entries_arrived([("1-0", {"to": "13800000000", "text": "hi", "id": "a"})])
        self.assertEqual(self.connector.submits, [], "waits for the record")
        (hset,) = self.writer.commands("HSET")
        self.assertEqual(hset[1], keys.inflight(self.channel))
        self.assertEqual(hset[2], part_field("1-0", 0))

        self.writer.write_all()
        self.assertEqual(len(self.connector.submits), 1)
        self.connector.answer(0)

        last = self.writer.items[-1]
        self.assertEqual([command[0] for command in last], ["XADD", "HDEL", "XACK"])
        event = _event_fields(last[0])
        self.assertEqual(
            (event["id"], event["seq"], event["outcome"]), ("a", 101, "ok")
        )
        self.assertNotIn("resend", event)
        self.assertEqual(self.index.entries[7]["id"], "a")
        self.assertEqual(flow.pending_parts, 0)

    def test_a_part_that_is_not_the_last_gets_a_done_mark_with_its_event(self):
        self.flow().entries_arrived(
            [("1-0", {"to": "13800000000", "text": LONG_TEXT, "id": "l"})]
        )
        self.writer.write_all()
        self.assertEqual(len(self.connector.submits), 3)
        self.connector.answer(1)
        last = self.writer.items[-1]
        self.assertEqual([command[0] for command in last], ["XADD", "HSET"])
        self.assertEqual(last[1][2], part_field("1-0", 1))
        self.assertIn('"done":1', last[1][3])

    def test_restart_skips_done_resends_in_flight_sends_the_rest(self):
        recovered = Recovered(
            {"1-0": {0: {"done": 1, "parts": 3}, 1: {"id": "l", "seq": 5}}}, RESEND
        )
        flow = self.flow(recovered)
        flow.entries_arrived(
            [("1-0", {"to": "13800000000", "text": LONG_TEXT, "id": "l"})]
        )
        self.writer.write_all()
        sent = [pdu.pk_number for pdu, _seq, _d in self.connector.submits]
        self.assertEqual(sent, [2, 3], "segment 1 finished before the restart")

        self.connector.answer(0)
        self.connector.answer(1, msg_id=8)
        events = [_event_fields(c) for c in self.writer.commands("XADD")]
        self.assertEqual([e.get("resend") for e in events], [1, None])
        self.assertEqual(self.writer.items[-1][-1], ack_command(self.channel, ["1-0"]))
        self.assertEqual(flow.counters["resent"], 1)

    def test_unknown_policy_writes_the_outcome_instead_of_resending(self):
        recovered = Recovered(
            {"1-0": {0: {"id": "u", "seq": 5, "segment": 1, "segments": 1}}}, UNKNOWN
        )
        self.flow(recovered).entries_arrived(
            [("1-0", {"to": "13800000000", "text": "hi", "id": "u"})]
        )
        self.assertEqual(self.connector.submits, [])
        (item,) = self.writer.items
        self.assertEqual([command[0] for command in item], ["XADD", "HDEL", "XACK"])
        event = _event_fields(item[0])
        self.assertEqual((event["outcome"], event["recovered"]), ("unknown", 1))
        self.assertEqual(event["seq"], 5)

    def test_entry_whose_parts_all_finished_is_only_acknowledged(self):
        recovered = Recovered({"1-0": {0: {"done": 1, "parts": 1}}})
        self.flow(recovered).entries_arrived(
            [("1-0", {"to": "13800000000", "text": "hi", "id": "d"})]
        )
        self.assertEqual(self.writer.commands("XADD"), [])
        self.assertEqual(self.writer.items[-1][-1][0], "XACK")

    def test_channel_stopped_leaves_the_entry_pending_and_unrecorded(self):
        flow = self.flow()
        flow.entries_arrived([("1-0", {"to": "13800000000", "text": "hi", "id": "s"})])
        self.writer.write_all()
        flow.stop()
        self.connector.submits[0][2].errback(ChannelStopped("stopped"))
        self.assertEqual(self.writer.commands("XADD"), [])
        self.assertEqual(self.writer.commands("XACK"), [])
        (hdel,) = self.writer.commands("HDEL")
        self.assertEqual(hdel[2:], (part_field("1-0", 0),))
        self.assertEqual(flow.pending_parts, 0)
        self.assertEqual(flow.capacity(), 0)

    def test_unanswered_at_a_stop_is_left_for_the_restart_policy(self):
        flow = self.flow()
        flow.entries_arrived([("1-0", {"to": "13800000000", "text": "hi", "id": "s"})])
        self.writer.write_all()
        flow.stop()
        self.connector.submits[0][2].errback(SubmitUnknown("lost", 101, 1))
        self.assertEqual(self.writer.commands("XADD"), [])
        self.assertEqual(self.writer.commands("HDEL"), [])

    def test_unanswered_while_running_is_an_unknown_outcome(self):
        flow = self.flow()
        flow.entries_arrived([("1-0", {"to": "13800000000", "text": "hi", "id": "s"})])
        self.writer.write_all()
        self.connector.submits[0][2].errback(SubmitUnknown("lost", 101, 1))
        (event,) = [_event_fields(c) for c in self.writer.commands("XADD")]
        self.assertEqual(event["outcome"], "unknown")
        self.assertEqual(self.writer.commands("XACK")[0][3:], ("1-0",))

    def test_concatenation_reference_depends_on_the_entry_only(self):
        self.assertEqual(
            concatenation_reference("17-0"), concatenation_reference("17-0")
        )
        self.assertNotEqual(
            concatenation_reference("17-0"), concatenation_reference("17-1")
        )

    def test_refused_entry_event_and_ack_together(self):
        self.flow().entries_arrived([("1-0", {"to": "x", "text": "hi", "id": "r"})])
        (item,) = self.writer.items
        self.assertEqual([command[0] for command in item], ["XADD", "XACK"])
        self.assertEqual(_event_fields(item[0])["type"], "failed")

    def test_entries_of_one_read_are_recorded_in_one_write(self):
        flow = self.flow()
        flow.entries_arrived(
            [
                ("1-0", {"to": "13800000000", "text": "hi", "id": "a"}),
                ("2-0", {"to": "13800000001", "text": LONG_TEXT, "id": "b"}),
            ]
        )
        (hset,) = self.writer.commands("HSET")
        fields = hset[2::2]
        self.assertEqual(
            fields,
            tuple(
                part_field(e, p)
                for e, p in [("1-0", 0)] + [("2-0", 0), ("2-0", 1), ("2-0", 2)]
            ),
        )
        self.writer.write_all()
        self.assertEqual(len(self.connector.submits), 4)

    def test_sent_record_names_the_sequence_id(self):
        self.flow().entries_arrived(
            [("1-0", {"to": "13800000000", "text": "hi", "id": "a"})]
        )
        self.writer.write_all()
        intended, sent = self.writer.commands("HSET")
        self.assertEqual(sent[2], part_field("1-0", 0))
        record = json.loads(sent[3])
        self.assertEqual(record, dict(json.loads(intended[3]), seq=101, submitted=0.0))

    def test_the_reader_is_woken_when_half_the_room_is_back(self):
        woken = []
        flow = self.flow(room_available=lambda: woken.append(flow.capacity()))
        limit = flow.capacity()
        flow.entries_arrived(
            [
                (f"{n}-0", {"to": "13800000000", "text": "hi", "id": str(n)})
                for n in range(limit)
            ]
        )
        self.writer.write_all()
        self.assertEqual(flow.capacity(), 0)
        for index in range(limit // 2 - 1):
            self.connector.answer(index, msg_id=index + 1)
        self.assertEqual(woken, [])
        self.connector.answer(limit // 2 - 1, msg_id=limit)
        self.assertEqual(woken, [limit // 2])
        self.connector.answer(limit // 2, msg_id=limit + 1)
        self.assertEqual(len(woken), 1, "once per return of the room")
