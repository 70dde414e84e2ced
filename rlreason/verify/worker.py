"""Worker process for symbolic comparisons: JSON lines in on stdin, verdicts out on stdout.

Run as ``python -m rlreason.verify.worker``; started and killed by `rlreason.verify.pool`.
"""

from __future__ import annotations

import json
import sys


def main() -> None:
    from rlreason.verify.symbolic import SLOW

    try:  # import the heavy parsers before reporting ready, so timeouts measure comparisons only
        import math_verify  # noqa: F401
        import sympy  # noqa: F401
        from latex2sympy2_extended import latex2sympy  # noqa: F401
    except Exception:  # pragma: no cover
        pass
    out = sys.stdout
    out.write("ready\n")
    out.flush()
    for line in sys.stdin:
        try:
            name, pred, gold = json.loads(line)
            ok = bool(SLOW[name](pred, gold))
        except BaseException:  # anything a parser throws means "not shown equal"
            ok = False
        out.write("1\n" if ok else "0\n")
        out.flush()


if __name__ == "__main__":
    main()
