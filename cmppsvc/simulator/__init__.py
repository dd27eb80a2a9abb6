# -*- test-case-name: tests.test_simulator_protocol -*-
"""A CMPP 2.0/3.0 gateway (ISMG) simulator: for tests, demos and benchmarks.

``SimulatorFactory`` is the gateway (listen it on a loopback endpoint),
``Behaviour`` its settings and misbehaviours, ``Accounts`` the logins it accepts.
``twistd cmppsim`` runs it from the command line (``cmppsvc.simulator.tap``).
"""

from cmppsvc.simulator.accounts import Accounts, parse_account
from cmppsvc.simulator.behaviour import Behaviour
from cmppsvc.simulator.factory import SUPPORTED_VERSIONS, SimulatorFactory
from cmppsvc.simulator.msgids import MsgIdAllocator
from cmppsvc.simulator.protocol import SimulatorProtocol
from cmppsvc.simulator.records import UNKNOWN_ACCOUNT, AccountCounters, ReceivedSubmit

__all__ = [
    "SUPPORTED_VERSIONS",
    "UNKNOWN_ACCOUNT",
    "AccountCounters",
    "Accounts",
    "Behaviour",
    "MsgIdAllocator",
    "ReceivedSubmit",
    "SimulatorFactory",
    "SimulatorProtocol",
    "parse_account",
]
