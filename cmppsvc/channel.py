# -*- test-case-name: tests.test_endtoend,tests.test_collection -*-
"""One configured channel as a Twisted service.

A channel is an account on one gateway, configured by its `channel-info:<id>`
record. Its service owns the reconnecting connector (all its connections), the
Sequence_Id allocator, the in-flight store, the MT and DELIVER flows and the
channel's status hash. The stores it writes through (events, Msg_Id index,
status, MT reader) are shared by every channel of the process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from cmppsvc import recovery
from cmppsvc.config import ChannelConfig
from cmppsvc.connector import ChannelConnector
from cmppsvc.inbound import InboundFlow
from cmppsvc.inflight import InFlightStore
from cmppsvc.latency import ChannelLatencies
from cmppsvc.leasewrites import LeaseFencedWriter
from cmppsvc.mtqueue import done_commands
from cmppsvc.outbound import OutboundFlow
from cmppsvc.recovery import Recovered, channel_policy
from cmppsvc.sequence import SequenceAllocator
from cmppsvc.settings import ConnectionSettings

log = Logger(namespace="cmppsvc.channel")

# How often counters and latency summaries are written to the status hash.
STATUS_INTERVAL = 5.0

#: Default bound (seconds) of a stopping channel's wait for its last writes;
#: Redis may be unreachable, and a stop must end.
FLUSH_TIMEOUT = 10.0


@attrs.define
class SharedStores:
    """What every channel of one process writes through."""

    redis: Any
    writer: Any
    events: Any
    msgindex: Any
    status: Any
    mt_reader: Any
    sequence_store: Any


def connection_settings(config: ChannelConfig) -> ConnectionSettings:
    """The connector's settings taken from a channel record."""
    return ConnectionSettings(
        channel_id=config.channel_id,
        account=config.account,
        password=config.password,
        version=config.cmpp_version,
        host=config.gateway_host,
        port=config.gateway_port,
        window=config.window,
        response_timeout=config.response_timeout,
        attempts=config.attempts,
        heartbeat_interval=config.heartbeat_interval,
        connections=config.connections,
        rate=config.rate,
        flow_control_retries=config.flow_control_retries,
        stop_timeout=config.stop_timeout,
    )


class ChannelService(Service):
    """Runs one channel: connects, sends its MT stream, records the outcomes."""

    def __init__(
        self,
        config: ChannelConfig,
        stores: SharedStores,
        clock: IReactorTime,
        endpoint_factory: Callable[[ConnectionSettings], Any] | None = None,
        flush_timeout: float = FLUSH_TIMEOUT,
        lease_owner: str | None = None,
    ) -> None:
        self.config = config
        #: This process's lease owner name: the channel's writes are applied
        #: only while no other process holds its lease (cmppsvc.leasewrites).
        self.lease_owner = lease_owner
        self.name = config.channel_id
        self._stores = stores
        self._clock = clock
        self._endpoint_factory = endpoint_factory
        self.flush_timeout = flush_timeout
        #: False when the last stop gave up waiting for the channel's writes.
        self.flushed = True
        self.latencies = ChannelLatencies()
        self.state = "stopped"
        self.last_error = ""
        self._status_call: Any = None
        self.connector: ChannelConnector | None = None
        self.outbound: OutboundFlow | None = None
        self.recovered = Recovered({})
        self._stopped: defer.Deferred | None = None
        self.inbound: InboundFlow | None = None

    @defer.inlineCallbacks
    def startService(self):
        """Reserve Sequence_Ids, load what was in flight, connect, read the MT
        stream (this consumer's pending entries first: ``cmppsvc.recovery``).

        A stop while this waits for Redis ends the start where it is: the
        channel then never connects."""
        Service.startService(self)
        self._stopped = None
        self.flushed = True
        config = self.config
        stores = self._stores
        self._set_state("starting")

        # A new run: reports of Msg_Ids indexed in an earlier run here are
        # counted in Redis, where another process may have counted them since.
        stores.msgindex.forget_channel(config.channel_id)

        self.allocator = SequenceAllocator(
            stores.sequence_store, config.channel_id, self._clock
        )
        yield self.allocator.start()
        if self._stopped is not None:
            return
        writer = stores.writer
        if self.lease_owner is not None:
            writer = LeaseFencedWriter(writer, config.channel_id, self.lease_owner)
        self.inflight = InFlightStore(writer, stores.redis, config.channel_id)
        loaded = yield self.inflight.load()
        if self._stopped is not None:
            return
        self.recovered = Recovered(loaded, channel_policy(config))
        if len(self.recovered):
            log.info(
                "channel {channel} resuming entries={entries} "
                "in_flight={in_flight} policy={policy}",
                channel=config.channel_id,
                entries=len(self.recovered),
                in_flight=self.recovered.in_flight_count(),
                policy=self.recovered.policy,
            )

        self.inbound = InboundFlow(
            config.channel_id,
            self._clock,
            stores.msgindex,
            stores.events,
            self.latencies.response_to_report,
            config.windowstats,
        )
        self.connector = ChannelConnector(
            connection_settings(config),
            self._clock,
            self.allocator.next,
            self.inbound.deliver_received,
            self._endpoint_factory,
            self._connection_state_changed,
        )
        self.outbound = OutboundFlow(
            config,
            self.connector,
            self._clock,
            self.inflight,
            stores.msgindex,
            stores.events,
            self._done_commands,
            self.latencies.submit_to_response,
            config.windowstats,
            self.recovered,
            room_available=stores.mt_reader.wake,
        )
        self.connector.startService()
        stores.mt_reader.add_channel(
            config.channel_id,
            self.outbound.entries_arrived,
            self._capacity,
            reject=self._refuse_unreadable,
            pending_done=self._pending_entries_read,
        )
        self._set_state("running")
        self._write_status_periodically()

    def stopService(self):
        """Stop reading, let outstanding submits finish, disconnect, flush.

        Parts not sent yet stay pending in the MT stream; parts unanswered
        after the connector's stop timeout are resolved at the next start.
        The flush waits at most `flush_timeout` (Redis may be away): what is
        not written then stays queued, and `flushed` is False.
        A second call waits for the first stop.
        """
        if self._stopped is None:
            self._stopped = self._stop()
        waiter = defer.Deferred()
        self._stopped.addBoth(lambda result: (waiter.callback(None), result)[1])
        return waiter

    @defer.inlineCallbacks
    def _stop(self):
        Service.stopService(self)
        self._stores.mt_reader.remove_channel(self.config.channel_id)
        if self._status_call is not None and self._status_call.active():
            self._status_call.cancel()
        if self.outbound is not None:
            self.outbound.stop()

        if self.connector is not None:
            yield self.connector.stopService()
        if getattr(self, "allocator", None) is not None:
            self.allocator.stop()
        self._set_state("stopped")
        self._write_status()
        self.flushed = yield self._flush_within_timeout()

    def _flush_within_timeout(self) -> defer.Deferred:
        """Fires with True once every write queued so far is written, or with
        False (said once in the log) after `flush_timeout` seconds."""
        writer = self._stores.writer
        flushing = writer.flush()
        flushing.addTimeout(self.flush_timeout, self._clock)

        def given_up(failure):
            failure.trap(defer.TimeoutError)
            outbound = self.outbound
            log.warn(
                "channel {channel} stopped without its last writes: no answer "
                "from Redis within {seconds} s, writes_queued={writes_queued} "
                "(all channels) unfinished_parts={unfinished_parts}; they stay "
                "queued, and what is not written before the process ends is "
                "recovered at the next start (the MT entries stay pending, parts "
                "in flight follow the restart policy)",
                channel=self.config.channel_id,
                seconds=self.flush_timeout,
                writes_queued=writer.backlog,
                unfinished_parts=outbound.pending_parts if outbound else 0,
            )
            return False

        return flushing.addCallbacks(lambda _: True, given_up)

    def forget(self) -> defer.Deferred:
        """After a manual stop: resolve what this channel left in flight and
        delete its cached keys (in-flight hash, Sequence_Id high-water mark)
        once nothing is left; see ``cmppsvc.recovery.forget``. Fires with the
        number of entries left (0: the keys are gone). Only while stopped."""
        if self.running:
            raise RuntimeError(f"channel {self.config.channel_id} is running")
        stores = self._stores
        inflight = InFlightStore(stores.writer, stores.redis, self.config.channel_id)
        return recovery.forget(inflight, stores.events)

    def _pending_entries_read(self) -> None:
        """Every pending entry was handed over: resolve records left behind."""
        if not len(self.recovered):
            return
        resolving = recovery.resolve_leftovers(
            self.recovered, self.inflight, self._stores.events
        )
        resolving.addErrback(
            lambda failure: log.failure(
                "resolving in-flight records failed channel={channel}",
                failure,
                channel=self.config.channel_id,
            )
        )

    def _refuse_unreadable(self, entry_id: str, reason: str, message_id: str) -> None:
        """An MT entry the reader could not take (not UTF-8, too large): a
        `failed` event that says why, under the caller's `id` when readable
        (`message_id`, else the entry id), then the acknowledgement behind it."""
        channel_id = self.config.channel_id
        if self.outbound is not None:
            self.outbound.counters["failed"] += 1
        self._stores.events.emit(
            {
                "type": "failed",
                "channel": channel_id,
                "id": message_id,
                "reason": reason,
            }
        )
        log.warn(
            "message refused channel={channel} id={id} reason={reason}",
            channel=channel_id,
            id=message_id,
            reason=reason,
        )
        self._stores.mt_reader.ack(channel_id, [entry_id])

    def _capacity(self) -> int:
        connector = self.connector
        if self.outbound is None or connector is None:
            return 0
        return self.outbound.capacity()

    def _done_commands(self, entry_id: str) -> tuple[tuple, ...]:
        return done_commands(self.config.channel_id, [entry_id])

    def _connection_state_changed(self, state: str, details: dict) -> None:
        error = details.get("error")
        if error:
            self.last_error = str(error)
        self._stores.events.emit(
            {
                "type": "state",
                "channel": self.config.channel_id,
                "id": "",
                "state": state,
                "reason": self.last_error if error else "",
            }
        )
        self._write_status()

    def _set_state(self, state: str) -> None:
        self.state = state
        log.info(
            "channel {channel} {state}", channel=self.config.channel_id, state=state
        )
        self._write_status()

    def status(self) -> dict[str, Any]:
        """State, connection facts, counters and latencies, without secrets."""
        status: dict[str, Any] = {
            "channel": self.config.channel_id,
            "state": self.state,
            "last_error": self.last_error,
            "gateway": f"{self.config.gateway_host}:{self.config.gateway_port}",
            "account": self.config.account,
            "version": hex(self.config.cmpp_version),
        }
        if self.connector is not None:
            status.update(
                {f"connection_{k}": v for k, v in self.connector.status().items()}
            )
        if self.outbound is not None:
            status.update(self.outbound.counters)
            status["pending_parts"] = self.outbound.pending_parts
        if self.inbound is not None:
            status.update(self.inbound.counters)
        for name, summary in self.latencies.summary().items():
            for key, value in summary.items():
                status[f"{name}_{key}"] = value
        return status

    def _write_status(self) -> None:
        fields = {
            key: "" if value is None else value
            for key, value in self.status().items()
            if isinstance(value, (str, int, float, type(None)))
        }
        self._stores.status.update(self.config.channel_id, fields)

    def _write_status_periodically(self) -> None:
        self._write_status()
        if self.running:
            self._status_call = self._clock.callLater(
                STATUS_INTERVAL, self._write_status_periodically
            )
