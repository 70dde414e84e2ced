"""TRL-style reward functions importable by path (`reward_fns:<name>`) from tests/test_rewards.py."""

import numpy as np


def length_bonus(prompts, completions, gold, **columns):
    """len(completion) + 1 if it ends with the gold answer."""
    return [float(len(c)) + (1.0 if c.endswith(g) else 0.0) for c, g in zip(completions, gold)]


def ids_and_meta(prompts, completions, completion_ids, difficulty, **columns):
    """Uses the columns built from the batch: token count + 10 for 'hard' items; numpy scalars."""
    return [np.float32(len(ids) + (10 if d == "hard" else 0)) for ids, d in zip(completion_ids, difficulty)]


def with_none(prompts, completions, **columns):
    return [None if i % 2 else 1.0 for i in range(len(completions))]


def wrong_length(prompts, completions, **columns):
    return [1.0]


def non_numeric(prompts, completions, **columns):
    return ["1.0"] * len(completions)


NOT_CALLABLE = 3


def always_inf(prompts, completions, **columns):
    """A broken user reward (say, 1/0 in numpy): every value inf; the run must skip, count, then stop.

    (NaN and None are TRL's "not applicable" and become 0; inf has no such reading.)"""
    return [float("inf")] * len(completions)


_calls = {"n": 0}


def inf_on_second_call(prompts, completions, **columns):
    """Length-based reward that is -inf once, on its second call (the step-2 update must be skipped)."""
    _calls["n"] += 1
    bad = _calls["n"] == 2
    return [float("-inf") if bad else float(len(c) % 7) for c in completions]


def constant(prompts, completions, **columns):
    """The same reward for every sample: every group is all-equal (dynamic sampling drops them all)."""
    return [1.0] * len(completions)


RECORDED: list[list[float]] = []


def constant_on_even_gold(prompts, completions, gold, **columns):
    """All-equal groups for problems with an even gold answer, a length reward elsewhere; every call's
    values are kept in RECORDED (the tests count the all-equal groups from them)."""
    values = [1.0 if int(g) % 2 == 0 else float(len(c)) for c, g in zip(completions, gold)]
    RECORDED.append(values)
    return values
