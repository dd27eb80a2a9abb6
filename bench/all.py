"""Every benchmark, one after the other, with moderate sizes: ``make bench``.

    .venv/bin/python -m bench.all [--only codec,engine,...]

Each benchmark runs in its own process (each one runs a reactor, and the figures
of one must not carry the garbage of another) with a time limit, and prints its own
figures and conditions.  The whole run takes two to three minutes on a 2-core
machine.  Each benchmark takes options for bigger runs: ``python -m bench.<name>
--help``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from bench.common import ROOT, conditions

#: (name, arguments) in the order they run; sizes kept moderate on purpose.
BENCHMARKS: list[tuple[str, list[str]]] = [
    ("codec", []),
    ("simulator", ["--count", "100000", "--seconds", "20"]),
    ("engine", ["--count", "100000", "--seconds", "30"]),
    ("pipeline", ["--count", "20000", "--paced-count", "3000", "--seconds", "60"]),
    ("pipeline", ["--count", "20000", "--paced-count", "0", "--window", "32"]),
    ("rate", []),
    ("scale", ["--channels", "1000", "--msgids", "100000", "--seconds", "60"]),
]

#: Seconds one benchmark process may run before it is stopped.
LIMIT = 300


def run(name: str, arguments: list[str]) -> bool:
    """Run ``bench.<name>`` in a child process; True when it finished cleanly."""
    if not (Path(__file__).parent / f"{name}.py").exists():
        print(f"== {name}: not present (bench/{name}.py), skipped\n", flush=True)
        return True

    print(f"== {name}: python -m bench.{name} {' '.join(arguments)}", flush=True)
    started = time.monotonic()
    try:
        finished = subprocess.run(
            [sys.executable, "-m", f"bench.{name}", *arguments],
            cwd=ROOT,
            timeout=LIMIT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        print(f"== {name}: stopped after {LIMIT} s\n", flush=True)
        return False
    print(
        f"== {name}: {time.monotonic() - started:.0f} s, exit {finished.returncode}\n",
        flush=True,
    )
    return finished.returncode == 0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; the exit status says whether all finished cleanly."""
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--only", help="comma-separated names to run")
    arguments = options.parse_args(argv)
    wanted = set(arguments.only.split(",")) if arguments.only else None

    print(f"cmppsvc benchmarks: {conditions()}\n", flush=True)
    started = time.monotonic()
    failed = [
        name
        for name, extra in BENCHMARKS
        if (wanted is None or name in wanted) and not run(name, extra)
    ]
    print(
        f"all benchmarks: {time.monotonic() - started:.0f} s"
        + (
            f"; exited non-zero (a target missed or an error): {', '.join(failed)}"
            if failed
            else ""
        )
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
