"""A task's grading options (`GradingOptions`): how numbers are read and what counts as equal.

Every option defaults to the exact reading; a task that wants another sets it (`Task` attributes of
the same names, or the `jsonl` task's parameters). docs/verification.md says what each one does.

- ``number_format``: how separators in plain numbers are read (`rlreason.verify.numeric`);
- ``tolerance``: relative numeric tolerance, 0 (exact) or a number in (0, 0.1]: an answer within
  ``tolerance * |gold|`` of a numeric gold is correct, also element by element in tuples, intervals
  and matrices, and for a gold that is an exact expression (``1.732`` for ``\\sqrt3`` at 1e-3);
- ``percent``: ``"either"`` (default, math-verify's rule: ``75\\%`` equals ``75`` and ``0.75``),
  ``"value"`` (a percent sign divides by 100: ``75\\%`` equals ``0.75`` only), ``"number"`` (the sign is
  dropped: ``75\\%`` equals ``75`` only); it applies to answers that are a plain number with a sign;
- ``choices``: the option letters of a multiple-choice task (``"ABCDE"``); empty for other tasks. Then
  the answer is a letter (``C``, ``(C)``, ``\\boxed{C}``, "the answer is C"), compared with the gold's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any

from rlreason.verify.numeric import check_format

PERCENT_MODES = ("either", "value", "number")
MAX_TOLERANCE = 0.1


@dataclass(frozen=True)
class GradingOptions:
    number_format: str = "en"
    tolerance: float = 0.0
    percent: str = "either"
    choices: str = ""

    def __post_init__(self) -> None:
        check_format(self.number_format)
        tol = self.tolerance
        if isinstance(tol, bool) or not isinstance(tol, int | float) or not 0 <= tol <= MAX_TOLERANCE:
            raise ValueError(f"tolerance: expected a number from 0 (exact) to {MAX_TOLERANCE}, got {tol!r}")
        if self.percent not in PERCENT_MODES:
            raise ValueError(f"percent: expected one of {', '.join(PERCENT_MODES)}, got {self.percent!r}")
        if not isinstance(self.choices, str) or not re.fullmatch(r"[A-Z]{0,26}", self.choices):
            raise ValueError(
                f"choices: expected the option letters in capitals (e.g. 'ABCDE') or '', got {self.choices!r}"
            )
        object.__setattr__(self, "tolerance", float(tol))

    @classmethod
    def of(cls, options: GradingOptions | dict[str, Any] | None = None, **overrides: Any) -> GradingOptions:
        """Options from an instance, a dict (unknown keys are an error naming them) or defaults; keyword
        overrides that are not None replace fields."""
        if isinstance(options, GradingOptions):
            base = {f.name: getattr(options, f.name) for f in fields(cls)}
        elif options is None:
            base = {}
        elif isinstance(options, dict):
            unknown = sorted(set(options) - {f.name for f in fields(cls)})
            if unknown:
                known = ", ".join(f.name for f in fields(cls))
                raise ValueError(f"grading options: unknown key '{unknown[0]}' (expected {known})")
            base = dict(options)
        else:
            raise ValueError(f"grading options: expected a GradingOptions or a dict, got {type(options).__name__}")
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)

    @classmethod
    def for_task(cls, task: Any) -> GradingOptions:
        """The options a task declares (its attributes of the same names; defaults where it has none)."""
        return cls(**{f.name: getattr(task, f.name, f.default) for f in fields(cls)})


DEFAULT = GradingOptions()
