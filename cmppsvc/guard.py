# -*- test-case-name: tests.test_runtime,tests.test_collection -*-
"""A safety net for demos and tests: only loopback gateways may be dialled.

Channel records in shared fixtures point at real, private gateway addresses.
A process started with `--loopback-only` (every demo and test does) refuses,
per channel, any record whose gateway is not a loopback address, so nothing
it runs can ever reach such a gateway by mistake.
"""

from __future__ import annotations

import ipaddress

from cmppsvc.config import ChannelConfig, ChannelConfigError


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and `localhost`."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def loopback_only(config: ChannelConfig) -> ChannelConfig:
    """Pass a config through unchanged, or refuse it if its gateway is remote."""
    if not is_loopback(config.gateway_host):
        raise ChannelConfigError(
            config.channel_id,
            "gatewayIp",
            f"{config.gateway_host} is not a loopback address and this process "
            "runs with --loopback-only",
        )
    return config
