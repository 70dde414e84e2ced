"""TRL-style reward functions importable by path from the tests."""


def length_bonus(prompts, completions, gold, **columns):
    return [float(len(c)) + (1.0 if c.endswith(g) else 0.0) for c, g in zip(completions, gold)]


def with_none(prompts, completions, **columns):
    return [None if i % 2 else 1.0 for i in range(len(completions))]


def wrong_length(prompts, completions, **columns):
    return [1.0]
