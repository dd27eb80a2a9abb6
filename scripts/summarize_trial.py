"""Turn trial's closing summary into one last line: "N passed, N failed".

Usage: summarize_trial.py LOG LINT_FAILED TRIAL_STATUS. Exits non-zero when
anything failed, when trial exited non-zero, or when no test ran at all.
"""

import re
import sys

FAILING = ("failures", "errors", "unexpectedSuccesses")


def main(log_path: str, lint_failed: str, trial_status: str) -> int:
    with open(log_path, encoding="utf-8", errors="replace") as log:
        lines = log.read().splitlines()

    counts: dict[str, int] = {}
    for line in reversed(lines):
        match = re.match(r"^(PASSED|FAILED) \((.*)\)\s*$", line.strip())
        if match:
            for part in match.group(2).split(","):
                name, _, number = part.strip().partition("=")
                counts[name] = int(number)
            break

    passed = counts.get("successes", 0) + counts.get("expectedFailures", 0)
    failed = sum(counts.get(name, 0) for name in FAILING) + int(lint_failed)
    skipped = counts.get("skips", 0)
    if not counts or int(trial_status) != 0:
        failed = max(failed, 1)

    if skipped:
        print(f"{skipped} skipped")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
