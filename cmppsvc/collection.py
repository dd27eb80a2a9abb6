"""All channels of one process, loaded from their `channel-info:<id>` records.

Records are found with SCAN (never KEYS). Each good record becomes a
`ChannelService`; a broken one is reported with the field and the reason, in
the log and in that channel's status hash, and skipped, so the other channels
run. Messages queued for a channel that cannot run stay queued.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from cmppsvc import keys
from cmppsvc.channel import ChannelService, SharedStores
from cmppsvc.config import ChannelConfig, ChannelConfigError, parse_channel_record

log = Logger(namespace="cmppsvc.collection")

SCAN_BATCH = 500


@defer.inlineCallbacks
def scan_channel_ids(redis: Any):
    """Every channel id that has a `channel-info:<id>` record."""
    ids: list[str] = []
    cursor = 0
    pattern = keys.channel_info("*")
    prefix_length = len(keys.channel_info(""))
    while True:
        cursor, found = yield redis.execute_command(
            "SCAN", cursor, "MATCH", pattern, "COUNT", SCAN_BATCH
        )
        for key in found:
            if isinstance(key, bytes):
                key = key.decode("utf-8", "replace")
            ids.append(key[prefix_length:])
        cursor = int(cursor)
        if cursor == 0:
            return sorted(set(ids))


class ChannelCollection(MultiService):
    """One `ChannelService` per good channel record."""

    def __init__(
        self,
        stores: SharedStores,
        clock: IReactorTime,
        endpoint_factory: Callable[..., Any] | None = None,
        config_filter: Callable[[ChannelConfig], ChannelConfig] | None = None,
    ) -> None:
        super().__init__()
        self._stores = stores
        self._clock = clock
        self._endpoint_factory = endpoint_factory
        self._config_filter = config_filter
        self.broken: dict[str, str] = {}

    @defer.inlineCallbacks
    def load(self):
        """Read every record and add a service for each good one."""
        channel_ids = yield scan_channel_ids(self._stores.redis)
        for channel_id in channel_ids:
            raw = yield self._stores.redis.get(keys.channel_info(channel_id))
            if raw is None:
                continue
            self.add_record(channel_id, raw)
        log.info(
            "channels loaded running={running} broken={broken}",
            running=len(self.services),
            broken=len(self.broken),
        )

    def add_record(self, channel_id: str, raw: bytes | str) -> ChannelService | None:
        """Parse one record and add its channel; report a broken one."""
        try:
            config = parse_channel_record(channel_id, raw)
            if self._config_filter is not None:
                config = self._config_filter(config)
        except ChannelConfigError as error:
            self.broken[channel_id] = str(error)
            log.error(
                "channel record refused channel={channel} field={field} "
                "reason={reason}",
                channel=channel_id,
                field=error.field,
                reason=error.reason,
            )
            self._stores.status.update(
                channel_id,
                {"channel": channel_id, "state": "broken", "last_error": str(error)},
            )
            return None

        self.broken.pop(channel_id, None)
        channel = ChannelService(
            config, self._stores, self._clock, self._endpoint_factory
        )
        channel.setServiceParent(self)
        return channel

    def channel(self, channel_id: str) -> ChannelService | None:
        """The running service of a channel, if there is one."""
        try:
            return self.getServiceNamed(channel_id)
        except KeyError:
            return None

    def status(self) -> list[dict[str, Any]]:
        """Every channel's status, the broken ones included."""
        found = [service.status() for service in self]
        found += [
            {"channel": channel_id, "state": "broken", "last_error": reason}
            for channel_id, reason in sorted(self.broken.items())
        ]
        return found
