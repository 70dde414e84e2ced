"""Worker process for symbolic comparisons: JSON lines in on stdin, verdicts out on stdout.

Run as ``python -m rlreason.verify.worker``; started and killed by `rlreason.verify.pool`.
"""

from __future__ import annotations

import json
import signal
import sys

from rlreason.verify.symbolic import SLOW

MEMORY_LIMIT_BYTES = 4 << 30  # a runaway expression fails with MemoryError instead of swapping the host


def _limit_memory() -> None:
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))
    except (ImportError, ValueError, OSError):  # pragma: no cover - not Linux, or a lower hard limit
        pass


def main() -> None:
    _limit_memory()
    # Ctrl-C in a terminal reaches the whole process group: the trainer checkpoints and stops at the
    # next step (rlreason/train/interrupt.py), and needs its workers' verdicts until then (a
    # KeyboardInterrupt inside a comparison would read as "not equal"). The pool ends workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:  # load parsers and sympy's lazy caches before reporting ready: timeouts measure comparisons only
        for name in SLOW:
            SLOW[name]("\\frac{\\sqrt{2}}{2}+x^2", "x^{2}+\\frac{1}{\\sqrt{2}}")
    except Exception:  # pragma: no cover
        pass
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    for line in sys.stdin:
        try:
            name, pred, gold, *options = json.loads(line)
            ok = bool(SLOW[name](pred, gold, *options))
        except BaseException:  # anything a parser throws means "not shown equal"
            ok = False
        out.write("1\n" if ok else "0\n")
        out.flush()


if __name__ == "__main__":
    main()
