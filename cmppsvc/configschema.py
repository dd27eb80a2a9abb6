# -*- test-case-name: tests.test_config -*-
"""The fields of a channel record: ChannelConfig and how each one is read.

Every field of the `channel-info:<id>` JSON format has a typed attribute here,
in snake_case, declared with the record's own name, the converter that reads
it, its default and a one-line meaning (the `doc` metadata, which
docs/channel-record.md repeats). Parsing the JSON is cmppsvc.config's job.
"""

from __future__ import annotations

import re
import types
from collections.abc import Mapping
from typing import Any

import attrs

from cmppsvc.configfields import (
    ChannelConfigError,
    FieldError,
    boolean,
    decimal,
    host,
    integer,
    one_of,
    text,
    version,
)

# A record is a few hundred bytes; anything past this is refused unparsed.
MAX_RECORD_BYTES = 64 * 1024

# Submits per second when neither speed nor sendRate gives a non-zero value.
DEFAULT_RATE = 100.0

# Src_Id is a 21-byte octet string: service code plus extension.
SRC_ID_LENGTH = 21

# Unknown fields whose name looks like a credential are left out of
# public_fields() and of repr, in case the admin system adds one.
_SECRET_NAME = re.compile(r"pass|pwd|secret|token|credential|key$", re.IGNORECASE)

# Opaque admin-system codes: any 32-bit integer.
_CODE = integer(-(2**31), 2**31 - 1)
# Milliseconds since the epoch.
_TIMESTAMP = integer(0, 2**63 - 1)
# Free text shown to operators (names, areas, comments).
_LABEL = text(1024)
_LONG_LABEL = text(MAX_RECORD_BYTES)
_PORT = integer(0, 65535)
_RATE = decimal(0, 1_000_000)


def _field(record: str, convert, doc: str, default: Any = attrs.NOTHING, **kwargs):
    """An attribute read from the record field `record` through `convert`."""
    aliases = kwargs.pop("aliases", ())
    metadata = {"record": record, "aliases": aliases, "convert": convert, "doc": doc}
    return attrs.field(default=default, metadata=metadata, **kwargs)


def is_secret_field(name: str) -> bool:
    """Whether a record field's value is a secret (a password, a key...)."""
    return _SECRET_NAME.search(name) is not None


def _extra_repr(extra: Mapping[str, Any]) -> str:
    """Unknown fields by name only: their values are nobody's business here."""
    return f"<{len(extra)} unknown fields: {', '.join(sorted(extra))}>"


@attrs.frozen(kw_only=True)
class ChannelConfig:
    """The configuration of one channel (one account on one gateway).

    Attributes are the record's fields in snake_case; `doc` metadata gives each
    one's meaning. Three are effective values with a fallback, so callers never
    repeat it: `service_id` (serviceid, else gatewayServiceId), `number`
    (number, else gatewayNomber) and `corp_id` (corpid, else account).
    """

    channel_id: str
    """The `<id>` of the `channel-info:<id>` key: how cmppsvc names the channel."""

    # Login and addressing (CMPP fields).
    account: str = _field(
        "account",
        text(6, required=True, ascii_only=True),
        "CONNECT Source_Addr, the login the carrier issued (1-6 ASCII chars).",
    )
    password: str = _field(
        "passpwd",
        text(256, secret=True),
        "The shared secret hashed into AuthenticatorSource. Never shown.",
        default="",
        repr=False,
    )
    corp_id: str = _field(
        "corpid",
        text(6, ascii_only=True),
        "SUBMIT Msg_src (SP_Id, 6 chars); empty means the account.",
        default="",
    )
    service_id: str = _field(
        "serviceid",
        text(10, ascii_only=True),
        "SUBMIT Service_Id (10 chars max); empty means gatewayServiceId.",
        default="",
    )
    gateway_service_id: str = _field(
        "gatewayServiceId",
        text(10, ascii_only=True),
        "The admin system's copy of the Service_Id; used when serviceid is empty.",
        default="",
    )
    number: str = _field(
        "number",
        text(SRC_ID_LENGTH, digits_only=True),
        "The SP service code: the base of SUBMIT Src_Id; empty means gatewayNomber.",
        default="",
    )
    gateway_number: str = _field(
        "gatewayNomber",
        text(SRC_ID_LENGTH, digits_only=True),
        "The admin system's copy of the service code (sic: Nomber).",
        default="",
    )
    expid_len: int = _field(
        "expidLen",
        integer(0, SRC_ID_LENGTH),
        "Most extension digits an MT message may append to number in Src_Id.",
        default=0,
    )
    local_expid_len: int = _field(
        "localExpidLen",
        integer(0, SRC_ID_LENGTH),
        "The admin system's own extension length. Display only.",
        default=0,
    )
    gateway_host: str = _field(
        "gatewayIp",
        host(required=True),
        "Host name or IP address of the ISMG: the address cmppsvc connects to.",
    )
    gateway_port: int = _field(
        "gatewayPort",
        integer(1, 65535),
        "TCP port of the ISMG (usually 7890).",
    )
    channel_host: str = _field(
        "channelIp",
        host(required=False),
        "The admin system's copy of the gateway address. cmppsvc ignores it.",
        default="",
    )
    channel_port: int = _field(
        "channelPort",
        _PORT,
        "The admin system's copy of the gateway port. cmppsvc ignores it.",
        default=0,
    )
    local_port: int = _field(
        "localPort",
        _PORT,
        "Local TCP port to bind for the connection; 0 lets the system choose.",
        default=0,
    )

    # Sending.
    speed: float = _field(
        "speed",
        _RATE,
        "Submits per second; the lower non-zero of speed and sendRate applies.",
        default=0.0,
    )
    send_rate: float = _field(
        "sendRate",
        _RATE,
        "Submits per second; the lower non-zero of speed and sendRate applies.",
        default=0.0,
    )
    words_len: int = _field(
        "wordsLen",
        integer(1, 160),
        "Characters that fit one SMS; a longer message is split into segments.",
        default=70,
    )
    words_max_len: int = _field(
        "wordsMaxlen",
        integer(1, 20_000),
        "Most characters one message may have; a longer one is refused.",
        default=500,
    )
    msg_fmt: int = _field(
        "msgformat",
        one_of(frozenset({0, 8, 15})),
        "SUBMIT Msg_Fmt: 8 UCS2, 15 GBK, 0 ASCII.",
        default=8,
    )
    windowstats: bool = _field(
        "windowstats",
        boolean(),
        "Log one line per message with its latencies (info level) when true.",
        default=False,
    )

    # The admin system's bookkeeping, kept for display; cmppsvc does not act on it.
    record_id: str = _field(
        "id", _LABEL, "The record's id; normally the key's <id>.", default=""
    )
    record_channel_id: str = _field(
        "channelId",
        _LABEL,
        "The admin system's channel id; may differ from id. Display only.",
        default="",
    )
    channel_name: str = _field("channelName", _LABEL, "Display name.", default="")
    channel_type: int = _field(
        "channelType", _CODE, "Admin system's channel type code.", default=0
    )
    status: int = _field(
        "status",
        _CODE,
        "Admin system's state code (4 in both samples); cmppsvc does not act on it.",
        default=0,
    )
    network: int = _field(
        "network", _CODE, "Admin system's carrier network code.", default=0
    )
    route_type: int = _field(
        "routeType", _CODE, "Admin system's routing type code.", default=0
    )
    route_channel: str = _field(
        "routeChannel", _LABEL, "Admin system's routing channel.", default=""
    )
    record_type: int = _field(
        "recordType", _CODE, "Admin system's record type code.", default=0
    )
    is_province: int = _field(
        "isProvince", _CODE, "1 for a provincial channel, 0 national.", default=0
    )
    area: str = _field("area", _LONG_LABEL, "Areas the channel serves.", default="")
    shield_area: str = _field(
        "shieldArea", _LONG_LABEL, "Areas blocked for all carriers.", default=""
    )
    mobile_shield_area: str = _field(
        "mobileShieldArea", _LONG_LABEL, "Areas blocked, China Mobile.", default=""
    )
    unicom_shield_area: str = _field(
        "unicomShieldArea", _LONG_LABEL, "Areas blocked, China Unicom.", default=""
    )
    telecom_shield_area: str = _field(
        "telecomShieldArea", _LONG_LABEL, "Areas blocked, China Telecom.", default=""
    )
    provider: str = _field("provider", _LABEL, "Supplier of the channel.", default="")
    channel_provider: str = _field(
        "channelProvider", _LABEL, "Supplier of the channel (second copy).", default=""
    )
    tenant_id: str = _field("tenantId", _LABEL, "Owning tenant.", default="")
    balance: float = _field(
        "balance", decimal(-1e15, 1e15), "Account balance (display).", default=0.0
    )
    price: float = _field(
        "price", decimal(0, 1e15), "Price per message (display).", default=0.0
    )
    comments: str = _field("comments", _LONG_LABEL, "Free text.", default="")
    creator: str = _field("creator", _LABEL, "Who created the record.", default="")
    updater: str = _field("updater", _LABEL, "Who last changed it.", default="")
    create_date: int = _field(
        "createDate", _TIMESTAMP, "Creation time, ms since the epoch.", default=0
    )
    update_date: int = _field(
        "updateDate", _TIMESTAMP, "Last change, ms since the epoch.", default=0
    )

    # cmppsvc's own optional fields.
    cmpp_version: int = _field(
        "cmppVersion",
        version(),
        "CONNECT Version: 32 (0x20, 2.0), 33 (0x21, 2.1) or 48 (0x30, 3.0).",
        default=0x20,
    )
    window: int = _field(
        "window",
        integer(1, 1024),
        "Submits awaiting a response, per connection.",
        default=16,
    )
    connections: int = _field(
        "connections", integer(1, 64), "TCP connections to the gateway.", default=1
    )
    response_timeout: float = _field(
        "responseTimeout",
        decimal(0.1, 3600),
        "Seconds to wait for a response before resending.",
        default=60.0,
    )
    attempts: int = _field(
        "attempts", integer(1, 10), "Sends of one request before giving up.", default=3
    )
    heartbeat_interval: float = _field(
        "heartbeatInterval",
        decimal(1, 3600),
        "Idle seconds before an ACTIVE_TEST.",
        default=180.0,
    )
    reports_wanted: bool = _field(
        "reportsWanted",
        boolean(),
        "SUBMIT Registered_Delivery 1 (ask for status reports) when true.",
        default=True,
        aliases=("registeredDelivery",),
    )
    restart_policy: str = _field(
        "restartPolicy",
        text(16, choices=frozenset({"resend", "unknown"})),
        "Submits unanswered at a restart: resend them, or report them unknown.",
        default="resend",
    )
    fee_user_type: int = _field(
        "feeUserType", integer(0, 3), "SUBMIT Fee_UserType (2: the SP).", default=2
    )
    fee_type: str = _field(
        "feeType",
        text(2, choices=frozenset({"01", "02", "03", "04", "05", "06"})),
        'SUBMIT FeeType ("01" free).',
        default="01",
    )
    fee_code: str = _field(
        "feeCode",
        text(6, digits_only=True),
        "SUBMIT FeeCode, in fen.",
        default="000000",
    )
    msg_level: int = _field(
        "msgLevel", integer(0, 9), "SUBMIT Msg_level (priority).", default=0
    )
    flow_control_retries: int = _field(
        "flowControlRetries",
        integer(0, 1000),
        "Resends of a submit answered Result 8 (flow control) before failing it.",
        default=30,
    )
    stop_timeout: float = _field(
        "stopTimeout",
        decimal(0, 300),
        "Seconds a graceful stop waits for outstanding responses.",
        default=5.0,
    )
    udh16: bool = _field(
        "udh16",
        boolean(),
        "Long messages use the 7-byte UDH with a 16-bit reference when true.",
        default=False,
    )

    extra: Mapping[str, Any] = attrs.field(
        factory=lambda: types.MappingProxyType({}),
        hash=False,
        repr=_extra_repr,
    )
    """Fields of the record cmppsvc does not know, kept as parsed and ignored."""

    @property
    def gateway_address(self) -> tuple[str, int]:
        """(host, port) of the ISMG: gatewayIp and gatewayPort."""
        return (self.gateway_host, self.gateway_port)

    @property
    def rate(self) -> float:
        """Submits per second for the channel: the lower of the non-zero values
        of speed and sendRate, or DEFAULT_RATE when neither is set."""
        limits = [limit for limit in (self.speed, self.send_rate) if limit > 0]
        return min(limits) if limits else DEFAULT_RATE

    @property
    def max_extension_length(self) -> int:
        """Extension digits an MT message may append: expidLen, but never past
        the 21 bytes of Src_Id."""
        return max(0, min(self.expid_len, SRC_ID_LENGTH - len(self.number)))

    def with_gateway(self, host: str, port: int) -> ChannelConfig:
        """A copy connecting to host:port (tests and demos point a channel at a
        local simulator). channelIp/channelPort follow when they were set."""
        gateway_host = convert_field(self.channel_id, "gatewayIp", host)
        gateway_port = convert_field(self.channel_id, "gatewayPort", port)
        changes: dict[str, Any] = {
            "gateway_host": gateway_host,
            "gateway_port": gateway_port,
        }
        if self.channel_host:
            changes["channel_host"] = gateway_host
        if self.channel_port:
            changes["channel_port"] = gateway_port
        return attrs.evolve(self, **changes)

    def public_fields(self) -> dict[str, Any]:
        """The record as cmppsvc understood it, for status pages and the HTTP
        API: record field names to values, unknown fields included, without
        the password or anything named like a credential."""
        shown: dict[str, Any] = {"channel": self.channel_id}
        for field in attrs.fields(type(self)):
            name = field.metadata.get("record")
            if name is None or name == "passpwd":
                continue
            shown[name] = getattr(self, field.name)
        for name, value in self.extra.items():
            if name not in shown and not is_secret_field(name):
                shown[name] = value
        shown["rate"] = self.rate
        return shown


def record_fields() -> list[attrs.Attribute]:
    """The attributes of ChannelConfig read from the record, in record order."""
    return [
        field for field in attrs.fields(ChannelConfig) if "record" in field.metadata
    ]


# Record name (or alias) -> attribute; every other name is an unknown field.
FIELDS_BY_RECORD_NAME: Mapping[str, attrs.Attribute] = {
    name: field
    for field in record_fields()
    for name in (field.metadata["record"], *field.metadata["aliases"])
}


def convert_field(channel_id: str, name: str, value: Any) -> Any:
    """Convert the value of record field `name` (a field's name or an alias),
    turning a FieldError into an error of the channel."""
    field = FIELDS_BY_RECORD_NAME[name]
    try:
        return field.metadata["convert"](value)
    except FieldError as problem:
        reason = problem.reason
    raise ChannelConfigError(channel_id, name, reason)


def _bookkeeping_fields() -> frozenset[str]:
    names = [field.name for field in attrs.fields(ChannelConfig)]
    return frozenset(names[names.index("record_id") : names.index("update_date") + 1])


#: Attributes from the admin system's bookkeeping (record_id .. update_date):
#: shown, never acted on, so a change of them alone restarts no channel.
BOOKKEEPING_FIELDS: frozenset[str] = _bookkeeping_fields()
