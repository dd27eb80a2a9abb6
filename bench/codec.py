"""Codec benchmark: SUBMIT and DELIVER encode+decode round trips per second.

Run ``.venv/bin/python -m bench.codec`` (about 5 seconds).  Each figure is the best of
three short runs over a pool of distinct PDUs (different numbers, sequence ids and
texts), so the memo tables see a realistic mix of repeated and new values.
"""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Callable

from bench.common import cpu_model
from cmppsvc.codec import (
    VERSION_20,
    VERSION_30,
    Deliver,
    StatusReport,
    Submit,
    decode,
    encode,
)

POOL_SIZE = 512
RUN_SECONDS = 0.3
RUNS = 3


def submits(count: int) -> list[Submit]:
    """Distinct one-destination UCS2 SUBMITs, as the service sends them."""
    return [
        Submit(
            registered_delivery=1,
            service_id="MXX0001",
            msg_src="901234",
            src_id="10658012",
            dest_terminal_ids=(f"1380013{index:04d}",),
            msg_content=f"您的验证码是{index:06d}".encode("utf-16-be"),
            seq=index + 1,
        )
        for index in range(count)
    ]


def mo_delivers(count: int) -> list[Deliver]:
    """Distinct MO DELIVERs with UCS2 text."""
    return [
        Deliver(
            msg_id=0xC1BDF08003E90000 + index,
            dest_id="10658012123",
            service_id="MXX0001",
            msg_fmt=8,
            src_terminal_id=f"1390013{index:04d}",
            msg_content=f"回复{index}".encode("utf-16-be"),
            seq=index + 1,
        )
        for index in range(count)
    ]


def report_delivers(count: int, version: int) -> list[Deliver]:
    """Distinct status-report DELIVERs (content already laid out, as received)."""
    pdus = []
    for index in range(count):
        report = StatusReport(
            0xC1BDEB4003E90000 + index,
            "DELIVRD",
            "2412031530",
            "2412031531",
            f"1380013{index:04d}",
            index,
        )
        pdu = Deliver(
            msg_id=0xC1BDF08003E90000 + index,
            dest_id="10658012",
            service_id="MXX0001",
            src_terminal_id=f"1380013{index:04d}",
            registered_delivery=1,
            seq=index + 1,
            report=report,
        )
        pdus.append(decode(encode(pdu, version), version))
    return pdus


def round_trips_per_second(pdus: list, version: int) -> float:
    """Best of RUNS timed runs of encode then decode over the pool."""
    best = 0.0
    for _run in range(RUNS):
        count = 0
        started = time.perf_counter()
        deadline = started + RUN_SECONDS
        while time.perf_counter() < deadline:
            for pdu in pdus:
                decode(encode(pdu, version), version)
            count += len(pdus)
        best = max(best, count / (time.perf_counter() - started))
    return best


def run() -> list[tuple[str, int, float]]:
    """(what, version, round trips per second) for each case."""
    cases: list[tuple[str, Callable[[int], list]]] = [
        ("SUBMIT", lambda version: submits(POOL_SIZE)),
        ("DELIVER (MO)", lambda version: mo_delivers(POOL_SIZE)),
        ("DELIVER (report)", lambda version: report_delivers(POOL_SIZE, version)),
    ]
    results = []
    for name, build in cases:
        for version in (VERSION_20, VERSION_30):
            results.append(
                (name, version, round_trips_per_second(build(version), version))
            )
    return results


def main() -> None:
    """Print the conditions, then one line per case."""
    print(f"Python {sys.version.split()[0]} ({platform.python_implementation()})")
    print(f"CPU: {cpu_model()} (one core, this process only)")
    print(f"pool of {POOL_SIZE} distinct PDUs, best of {RUNS} runs of {RUN_SECONDS} s")
    for name, version, rate in run():
        label = f"{version >> 4}.{version & 0xF}"
        print(f"{name:<17} CMPP {label}: {rate:>10,.0f} encode+decode round trips/s")


if __name__ == "__main__":
    main()
