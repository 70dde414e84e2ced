"""`lab-arith`: the procedurally generated arithmetic curriculum of the lab.

Three difficulty levels, chosen so that *when to think* is a real question for a ~1 M-parameter
model:

======  =========  ===========================================  ==============================
level   example    think trace (one step per line = episode)    direct answer in one pass
======  =========  ===========================================  ==============================
easy    ``7+8=``   ``7+8=15``                                   reliable
medium  ``47+38=`` ``7+8=15`` / ``4+3=7`` / ``7+1=8`` -> ``85``   less reliable (carry)
hard    ``47*8=``  ``7*8=56`` / ``4*8=32`` / ``32+5=37`` -> ``376`` unreliable (product + carry)
======  =========  ===========================================  ==============================

Every written step is a one-digit table fact or a two-digit + one-digit sum, and the answer is the
last step's result followed by the first step's units digit; the hard items' direct answer needs a
multi-digit product with carries in one forward pass, which a tiny transformer does not learn to
generalise to held-out operands. Easy items are one-digit sums: facts the model also writes as steps
of harder items, so the easy test problems are new problems but not new facts.

Redundancy (what L2T's information gain can remove): a share `redundant_rate` of think traces
carries between 1 and `redundant_max` redundant episodes, each of a kind drawn from
`redundant_kinds`: ``recheck`` writes one of the steps again after it (``7*8=56`` twice),
``detour`` inserts a true one-digit fact about the operands that the answer does not use (the
tens digit of one operand plus the units digit of the other, or the swapped sum on easy items;
see `_detour`). Both keep the trace correct and only make it longer. The defaults (30 %, one
re-check) are the original lab; ``redundant_max: 3`` with both kinds makes redundant traces up to
twice as long, so that warm-up traces vary in length and compression has room. Each problem's
metadata marks them: ``redundant`` (bool), ``redundant_episodes`` (count), ``redundant_lines``
(0-based line indices in the think trace, their kinds in ``redundant_line_kinds``) and
``useful_steps`` (the steps the answer needs), which the `info_gain` reward uses to report gain
and penalty per episode type.

`pool` splits the training operands into two disjoint halves, ``sft`` for the warm-up and ``rl``
for reinforcement learning: RL on problems the warm-up already memorised rewards recall, not
reasoning (a direct answer is "correct" on every memorised product), and drives any method toward
``<short>``.

`styles` chooses the SFT targets each problem carries: both (the default, for the methods that
choose a mode) or ``[think]`` only, a warm-up that always reasons (L2T's setting: compress the
reasoning, not choose whether to reason).

Responses: ``<short>376`` or ``<think>\\n7*8=56\\n4*8=32\\n32+5=37\\n</think>376`` (EOS appended
by the trainer). Train and test operands are disjoint per level (the test set is drawn first from
each level's full operand space, the training pool is the rest).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from rlreason.registry import TASKS
from rlreason.tasks.base import Problem, Task

Item = tuple[int, int]


def _easy_space() -> list[Item]:
    return [(a, b) for a in range(10) for b in range(10)]


def _medium_space() -> list[Item]:
    return [(a, b) for a in range(11, 100) for b in range(11, 100) if a % 10 and b % 10]


def _hard_space() -> list[Item]:
    return [(a, b) for a in range(11, 100) for b in range(3, 10) if a % 10]


def _easy(a: int, b: int) -> tuple[str, list[str], int]:
    return f"{a}+{b}=", [f"{a}+{b}={a + b}"], a + b


def _medium(a: int, b: int) -> tuple[str, list[str], int]:
    (ta, ua), (tb, ub) = divmod(a, 10), divmod(b, 10)
    units, carry = ua + ub, (ua + ub) // 10
    steps = [f"{ua}+{ub}={units}", f"{ta}+{tb}={ta + tb}", f"{ta + tb}+{carry}={ta + tb + carry}"]
    return f"{a}+{b}=", steps, a + b


def _detour(a: int, b: int, steps: list[str]) -> str:
    """A true one-digit fact about the operands that the answer does not need (never one of `steps`).

    Two-digit a: its tens digit plus b's units digit; easy items: the swapped sum. Where that is one
    of the steps (repeated digits), the first candidate that is not: the other order, then a product.
    """
    (ta, ua), ub = divmod(a, 10), b % 10
    x, y = (ta, ub) if ta else (b, a)
    candidates = [f"{x}+{y}={x + y}", f"{y}+{x}={x + y}", f"{x}*{y}={x * y}", f"{ua}*{ub}={ua * ub}"]
    return next(c for c in candidates if c not in steps)


def _hard(a: int, b: int) -> tuple[str, list[str], int]:
    ta, ua = divmod(a, 10)
    units, carry = ua * b, (ua * b) // 10
    steps = [f"{ua}*{b}={units}", f"{ta}*{b}={ta * b}", f"{ta * b}+{carry}={ta * b + carry}"]
    return f"{a}*{b}=", steps, a * b


REDUNDANT_KINDS = ("recheck", "detour")

LEVELS: dict[str, tuple[Callable[[], list[Item]], Callable[[int, int], tuple[str, list[str], int]]]] = {
    "easy": (_easy_space, _easy),
    "medium": (_medium_space, _medium),
    "hard": (_hard_space, _hard),
}


@TASKS.register("lab-arith")
class LabArith(Task):
    """Procedural arithmetic curriculum (easy sums, two-digit sums, two-digit products) with SFT traces."""

    verifier = "math"
    answer_cue = "</think>"

    def __init__(
        self,
        seed: int = 0,
        levels: list[str] | tuple[str, ...] = ("easy", "medium", "hard"),
        n_train_per_level: int = 2000,
        n_test_per_level: int = 100,
        redundant_rate: float = 0.3,
        redundant_max: int = 1,
        redundant_kinds: list[str] | tuple[str, ...] = ("recheck",),
        level_weights: dict[str, float] | None = None,
        pool: str = "all",
        styles: list[str] | tuple[str, ...] = ("short", "think"),
    ) -> None:
        levels = list(levels)
        bad = [lv for lv in levels if lv not in LEVELS]
        if bad or not levels:
            raise ValueError(
                f"levels: unknown level {bad[0] if bad else '(none given)'!r} (valid: {', '.join(LEVELS)})"
            )
        if not 0.0 <= redundant_rate <= 1.0:
            raise ValueError(f"redundant_rate: expected a value in [0, 1], got {redundant_rate}")
        if not isinstance(redundant_max, int) or redundant_max < 1:
            raise ValueError(f"redundant_max: expected an integer >= 1, got {redundant_max!r}")
        kinds = list(redundant_kinds)
        bad_kinds = [k for k in kinds if k not in REDUNDANT_KINDS]
        if bad_kinds or not kinds:
            raise ValueError(
                f"redundant_kinds: unknown kind {bad_kinds[0] if bad_kinds else '(none given)'!r} "
                f"(valid: {', '.join(REDUNDANT_KINDS)})"
            )
        self.redundant_max, self.redundant_kinds = redundant_max, kinds
        self.styles = list(styles)
        if not self.styles or any(st not in ("short", "think") for st in self.styles):
            raise ValueError(f"styles: expected a non-empty subset of ['short', 'think'], got {self.styles}")
        if n_train_per_level < 1 or n_test_per_level < 1:
            raise ValueError("n_train_per_level and n_test_per_level must be positive")
        if pool not in ("all", "sft", "rl"):
            raise ValueError(f"pool: expected 'all', 'sft' or 'rl', got {pool!r}")
        self.pool = pool
        self.weights = {lv: 1.0 for lv in levels}
        for lv, w in (level_weights or {}).items():
            if lv not in self.weights or w <= 0:
                raise ValueError(f"level_weights.{lv}: expected a level in {levels} with a positive weight")
            self.weights[lv] = float(w)
        self.seed, self.levels = seed, levels
        self.n_train, self.n_test, self.redundant_rate = n_train_per_level, n_test_per_level, redundant_rate
        self._cache: dict[str, list[Problem]] = {}

    def problems(self, split: str) -> list[Problem]:
        if split not in ("train", "test"):
            raise ValueError(f"lab-arith has splits 'train' and 'test', not {split!r}")
        if split not in self._cache:
            self._cache = self._build()
        return self._cache[split]

    def _build(self) -> dict[str, list[Problem]]:
        per_level: dict[str, dict[str, list[Problem]]] = {}
        for level in self.levels:
            space_fn, make = LEVELS[level]
            rng = random.Random(f"lab-arith:{self.seed}:{level}")
            space = space_fn()
            rng.shuffle(space)
            n_test = min(self.n_test, len(space) // 4)  # easy has only 100 items: 25 held out
            test_items, train_pool = space[:n_test], space[n_test:]
            half = len(train_pool) // 2  # disjoint operand pools: RL must not replay what SFT memorised
            train_pool = {"all": train_pool, "sft": train_pool[:half], "rl": train_pool[half:]}[self.pool]
            n_train = max(1, round(self.n_train * self.weights[level]))  # the SFT/RL mix follows the weights
            train_items = [train_pool[rng.randrange(len(train_pool))] for _ in range(n_train)]
            per_level[level] = {
                "test": [
                    self._problem(level, make, a, b, f"{level}-test-{i}", rng) for i, (a, b) in enumerate(test_items)
                ],
                "train": [
                    self._problem(level, make, a, b, f"{level}-train-{i}", rng) for i, (a, b) in enumerate(train_items)
                ],
            }
        out: dict[str, list[Problem]] = {}
        for split in ("train", "test"):
            # interleave levels so that any prefix (eval.n) keeps the difficulty mix
            columns = [per_level[lv][split] for lv in self.levels]
            shortest = min(len(c) for c in columns)
            out[split] = [p for row in zip(*columns) for p in row] + [p for col in columns for p in col[shortest:]]
        return out

    def _problem(self, level: str, make, a: int, b: int, uid: str, rng: random.Random) -> Problem:
        prompt, steps, answer = make(a, b)
        redundant = rng.random() < self.redundant_rate
        trace, kinds = self._redundant_trace(a, b, steps, rng) if redundant else (list(steps), [None] * len(steps))
        think = "<think>\n" + "".join(s + "\n" for s in trace) + "</think>" + str(answer)
        lines = [i for i, k in enumerate(kinds) if k is not None]
        return Problem(
            uid=uid,
            prompt=prompt,
            gold=str(answer),
            difficulty=level,
            meta={
                "a": a,
                "b": b,
                "redundant": redundant,
                "steps": len(trace),
                "redundant_episodes": len(lines),
                "redundant_lines": lines,
                "redundant_line_kinds": [kinds[i] for i in lines],
                "useful_steps": list(steps),
            },
            targets={k: v for k, v in (("short", f"<short>{answer}"), ("think", think)) if k in self.styles},
        )

    def _redundant_trace(
        self, a: int, b: int, steps: list[str], rng: random.Random
    ) -> tuple[list[str], list[str | None]]:
        """The steps with 1..redundant_max redundant lines inserted, and each line's kind (None: useful).

        With the defaults (one re-check) this draws exactly what the original lab drew, so the
        shipped experiments' data is unchanged.
        """
        trace, kinds = list(steps), [None] * len(steps)
        n = 1 if self.redundant_max == 1 else rng.randint(1, self.redundant_max)
        for _ in range(n):
            kind = self.redundant_kinds[0] if len(self.redundant_kinds) == 1 else rng.choice(self.redundant_kinds)
            k = rng.randrange(len(steps))
            at = next(i for i, line in enumerate(trace) if line == steps[k] and kinds[i] is None) + 1
            line = steps[k] if kind == "recheck" else _detour(a, b, steps)
            trace.insert(at, line)  # after the k-th step: a re-check repeats it, a detour wanders off
            kinds.insert(at, kind)
        return trace, kinds
