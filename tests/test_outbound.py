# Tests for cmppsvc.outbound: parts recorded before sending, outcomes atomic.
"""The MT flow with an in-memory writer and connector: what is written, in
which atomic item, and what a restart does with recorded parts."""

from __future__ import annotations

import json

import attrs
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from cmppsvc import keys
from cmppsvc.config import parse_channel_record
from cmppsvc.connector import ChannelStopped, SubmitOutcome, SubmitUnknown
from cmppsvc.events import EventWriter
from cmppsvc.inflight import SENT_DELAY, InFlightStore, part_field
from cmppsvc.latency import LatencyHistogram
from cmppsvc.mtparts import concatenation_reference
from cmppsvc.mtqueue import done_commands
from cmppsvc.outbound import OutboundFlow
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

    def cancel(self, serial: int) -> bool:
        """Like WriteBehind.cancel: an item not written yet is dropped."""
        if serial <= self.written or not self.items[serial - 1]:
            return False
        self.items[serial - 1] = ()
        return True

    def when_written(self, serial: int) -> defer.Deferred:
        d = defer.Deferred()
        self.waiting.append((serial, d))
        return d

    def write_all(self) -> None:
        self.written = len(self.items)
        waiting, self.waiting = self.waiting, []
        for _serial, d in waiting:
            d.callback(None)

    def write_until_quiet(self) -> None:
        """write_all until nothing waits (parts are handed over a few at a
        time, each handover waiting for its records)."""
        while self.waiting:
            self.write_all()

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

    def answer(
        self, index: int, msg_id: int = 7, result: int = 0, resent: bool = False
    ) -> None:
        _pdu, seq, d = self.submits[index]
        d.callback(SubmitOutcome(seq, msg_id, result, "ok", 1.0, 1.5, 1, resent))


class FakeIndex:
    def __init__(self) -> None:
        self.entries: dict[int, dict] = {}

    def put(self, msg_id: int, entry: dict) -> None:
        self.entries[msg_id] = entry

    def put_commands(self, msg_id: int, entry: dict) -> tuple:
        # In memory only: nothing to queue with the outcome.
        self.entries[msg_id] = entry
        return ()


class ClockedWriter(FakeWriter):
    """A FakeWriter with a clock: sent records wait ``SENT_DELAY``."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.on_close: list = []

    def add_on_close(self, callback) -> None:
        self.on_close.append(callback)


def _config():
    key, raw = fixture_records()[0]
    return parse_channel_record(key.split(":", 1)[1], raw)


def _event_fields(command: tuple) -> dict:
    flat = command[6:]
    return dict(zip(flat[0::2], flat[1::2]))


class OutboundTests(SynchronousTestCase):
    """One channel's MT flow."""

    def setUp(self) -> None:
        self.config = _config()
        self.channel = self.config.channel_id
        self.writer = FakeWriter()
        self.connector = FakeConnector()
        self.index = FakeIndex()
        self.inflight = InFlightStore(self.writer, None, self.channel)

    def intended(self) -> list[str]:
        """The fields of the intended records written, in order."""
        return [
            command[2]
            for command in self.writer.commands("HSET")
            if command[1] == keys.inflight(self.channel) and '"seq"' not in command[3]
        ]

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
            lambda entry_id: done_commands(self.channel, [entry_id]),
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

    def test_parts_are_recorded_only_as_the_connector_sends_them(self):
        # At 20 per second a twentieth of a second is one part: the others
        # wait unrecorded, so a crash leaves no record of a part never sent.
        self.config = attrs.evolve(self.config, speed=20, send_rate=20)
        flow = self.flow()
        flow.entries_arrived(
            [(f"{n}-0", {"to": "13800000000", "text": "hi"}) for n in range(5)]
        )
        self.assertEqual(self.intended(), [part_field("0-0", 0)])

        self.writer.write_all()
        self.assertEqual(len(self.connector.submits), 1)
        self.assertEqual(self.intended(), [part_field("0-0", 0), part_field("1-0", 0)])

        self.writer.write_until_quiet()
        self.assertEqual(len(self.connector.submits), 5)
        self.assertEqual(flow.pending_parts, 5)

    def test_a_part_sent_again_after_a_lost_connection_is_marked_resend(self):
        self.flow().entries_arrived(
            [("1-0", {"to": "13800000000", "text": "hi", "id": "a"})]
        )
        self.writer.write_all()
        self.connector.answer(0, resent=True)
        (event,) = [_event_fields(c) for c in self.writer.commands("XADD")]
        self.assertEqual(event["resend"], 1)

    def test_parts_never_handed_over_are_left_unrecorded_at_a_stop(self):
        self.config = attrs.evolve(self.config, speed=20, send_rate=20)
        woken = []
        flow = self.flow(room_available=lambda: woken.append(True))
        flow.entries_arrived(
            [(f"{n}-0", {"to": "13800000000", "text": "hi"}) for n in range(5)]
        )
        flow.stop()
        self.writer.write_until_quiet()
        self.assertEqual(len(self.connector.submits), 0)
        self.assertEqual(self.intended(), [part_field("0-0", 0)], "the one handed")
        self.assertEqual(flow.pending_parts, 0)
        self.assertEqual(woken, [], "a stopping channel reads nothing more")

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
        self.assertEqual(
            self.writer.items[-1][-1:], done_commands(self.channel, ["1-0"])
        )
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

    def test_intended_record_without_seq_is_in_flight_for_both_policies(self):
        # A crash after the sent record was dropped (answer queued, not yet
        # written) leaves the intended record: it must count as in flight.
        intended = {"id": "i", "to": "13800000000", "segment": 1, "segments": 1}
        flow = self.flow(Recovered({"1-0": {0: dict(intended, parts=1)}}, RESEND))
        flow.entries_arrived([("1-0", {"to": "13800000000", "text": "hi", "id": "i"})])
        self.writer.write_all()
        self.assertEqual(len(self.connector.submits), 1)
        self.connector.answer(0)
        self.assertEqual(_event_fields(self.writer.commands("XADD")[0])["resend"], 1)

        self.writer.items.clear()
        flow = self.flow(Recovered({"2-0": {0: dict(intended, parts=1)}}, UNKNOWN))
        flow.entries_arrived([("2-0", {"to": "13800000000", "text": "hi", "id": "i"})])
        self.assertEqual(len(self.connector.submits), 1, "not sent again")
        (item,) = self.writer.items
        event = _event_fields(item[0])
        self.assertEqual((event["outcome"], event["seq"]), ("unknown", ""))

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

    def test_sent_record_still_queued_is_dropped_when_the_answer_comes(self):
        self.flow().entries_arrived(
            [("1-0", {"to": "13800000000", "text": "hi", "id": "a"})]
        )
        self.writer.write_all()
        self.connector.answer(0)
        # Only the confirmed intended record was written: the outcome item
        # (event, deletion, XACK) made the sent record useless.
        (intended,) = self.writer.commands("HSET")
        self.assertNotIn("seq", json.loads(intended[3]))
        last = self.writer.items[-1]
        self.assertEqual([command[0] for command in last], ["XADD", "HDEL", "XACK"])
        self.assertEqual(_event_fields(last[0])["seq"], 101)

    def test_sent_record_already_written_is_kept(self):
        self.flow().entries_arrived(
            [("1-0", {"to": "13800000000", "text": LONG_TEXT, "id": "l"})]
        )
        self.writer.write_all()
        self.writer.write_all()  # the sent records are written
        self.connector.answer(0)
        hsets = self.writer.commands("HSET")
        sent = [json.loads(command[3]) for command in hsets[1:4]]
        self.assertEqual([record["seq"] for record in sent], [101, 102, 103])
        self.assertEqual(json.loads(hsets[4][3]), {"done": 1, "parts": 3})

    def test_only_the_answered_part_loses_its_queued_sent_record(self):
        self.flow().entries_arrived(
            [("1-0", {"to": "13800000000", "text": LONG_TEXT, "id": "l"})]
        )
        self.writer.write_all()
        self.connector.answer(1, msg_id=8)
        records = [json.loads(command[3]) for command in self.writer.commands("HSET")]
        self.assertEqual(
            [record.get("seq") for record in records[1:]], [101, 103, None]
        )
        self.assertEqual(records[-1], {"done": 1, "parts": 3})

    def test_channel_stopped_drops_the_queued_sent_record(self):
        flow = self.flow()
        flow.entries_arrived([("1-0", {"to": "13800000000", "text": "hi", "id": "a"})])
        self.writer.write_all()
        self.connector.submits[0][2].errback(ChannelStopped("stopped"))
        self.assertEqual(len(self.writer.commands("HSET")), 1)
        (hdel,) = self.writer.commands("HDEL")
        self.assertEqual(hdel[2:], (part_field("1-0", 0),))

    def test_unanswered_at_a_stop_keeps_the_sent_record(self):
        flow = self.flow()
        flow.entries_arrived([("1-0", {"to": "13800000000", "text": "hi", "id": "a"})])
        self.writer.write_all()
        flow.stop()
        self.connector.submits[0][2].errback(SubmitUnknown("no answer"))
        _intended, sent = self.writer.commands("HSET")
        self.assertEqual(json.loads(sent[3])["seq"], 101)

    def clocked(self) -> OutboundFlow:
        self.writer = ClockedWriter()
        self.inflight = InFlightStore(self.writer, None, self.channel)
        return self.flow()

    def test_sent_record_of_a_part_answered_in_time_is_never_written(self):
        self.clocked().entries_arrived(
            [("1-0", {"to": "13800000000", "text": "hi", "id": "a"})]
        )
        self.writer.write_all()
        self.connector.answer(0)
        self.writer.clock.advance(SENT_DELAY * 2)
        self.assertEqual(len(self.writer.commands("HSET")), 1, "intended only")
        self.assertEqual(self.writer.clock.getDelayedCalls(), [], "no timer left")

    def test_sent_record_of_a_slow_part_is_written_before_its_outcome(self):
        self.clocked().entries_arrived(
            [("1-0", {"to": "13800000000", "text": LONG_TEXT, "id": "l"})]
        )
        self.writer.write_all()
        self.writer.clock.advance(SENT_DELAY)
        hsets = self.writer.commands("HSET")
        self.assertEqual([json.loads(c[3])["seq"] for c in hsets[1:]], [101, 102, 103])
        self.connector.answer(0)
        self.assertEqual([c[0] for c in self.writer.items[-1]], ["XADD", "HSET"])
        self.assertEqual(len(self.writer.items), 5, "outcome after the sent records")

    def test_unanswered_at_a_stop_writes_its_sent_record_at_once(self):
        flow = self.clocked()
        flow.entries_arrived([("1-0", {"to": "13800000000", "text": "hi", "id": "a"})])
        self.writer.write_all()
        flow.stop()
        self.connector.submits[0][2].errback(SubmitUnknown("no answer"))
        _intended, sent = self.writer.commands("HSET")
        self.assertEqual(json.loads(sent[3])["seq"], 101)
        self.writer.clock.advance(SENT_DELAY)
        self.assertEqual(len(self.writer.commands("HSET")), 2, "written once")

    def test_closing_the_writer_cancels_the_sent_timer(self):
        self.clocked().entries_arrived(
            [("1-0", {"to": "13800000000", "text": "hi", "id": "a"})]
        )
        self.writer.write_all()
        self.assertEqual(len(self.writer.clock.getDelayedCalls()), 1)
        for callback in self.writer.on_close:
            callback()
        self.assertEqual(self.writer.clock.getDelayedCalls(), [])

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
        self.writer.write_until_quiet()
        self.assertEqual(flow.capacity(), 0)
        for index in range(limit // 2 - 1):
            self.connector.answer(index, msg_id=index + 1)
        self.assertEqual(woken, [])
        self.connector.answer(limit // 2 - 1, msg_id=limit)
        self.assertEqual(woken, [limit // 2])
        self.connector.answer(limit // 2, msg_id=limit + 1)
        self.assertEqual(len(woken), 1, "once per return of the room")
