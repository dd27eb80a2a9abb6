"""The `twistd cmppsvc` plugin: see cmppsvc.tap for its options."""

from twisted.application.service import ServiceMaker

cmppsvc = ServiceMaker(
    "cmppsvc",
    "cmppsvc.tap",
    "CMPP 2.0/3.0 SMS gateway client: one channel per channel-info record in Redis",
    "cmppsvc",
)
