"""The simulator as ``twist cmppsim`` runs it, under pyinstrument: for profiling.

    python -m bench.simchild PROFILE.txt [cmppsim options]

Stops on SIGTERM or SIGINT and then writes the text profile to PROFILE.txt.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path


def main(argv: list[str]) -> None:
    """Run the simulator service until a signal; write the profile."""
    from pyinstrument import Profiler
    from twisted.internet import reactor

    from cmppsvc.simulator.tap import Options, makeService

    output, arguments = argv[0], argv[1:]
    options = Options()
    options.parseOptions(arguments)
    service = makeService(options)

    def stop(*_: object) -> None:
        reactor.callFromThread(reactor.stop)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    profiler = Profiler(interval=0.0005)
    profiler.start()
    reactor.callWhenRunning(service.startService)
    reactor.run(installSignalHandlers=False)
    profiler.stop()
    Path(output).write_text(
        profiler.output_text(unicode=False, color=False, show_all=True)
    )


if __name__ == "__main__":
    main(sys.argv[1:])
