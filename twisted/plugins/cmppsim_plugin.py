"""Registers ``twistd cmppsim``, the CMPP gateway (ISMG) simulator."""

from twisted.application.service import ServiceMaker

cmppsim = ServiceMaker(
    "cmppsvc ISMG simulator",
    "cmppsvc.simulator.tap",
    "A CMPP 2.0/3.0 gateway simulator for tests and benchmarks (loopback).",
    "cmppsim",
)
