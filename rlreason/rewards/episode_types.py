"""Which reasoning episodes a task marked as needed: the per-type view of L2T's process reward.

Each line of a response's ``<think>`` region is ``useful`` (one of the task's ``useful_steps``, not
written more often than the solution needs it), ``recheck`` (a step already written earlier in this
response) or ``other`` (a detour fact, or a wrong step); `info_gain` logs gain and penalty per type.

Why: docs/algorithms.md#episode-types
"""

from __future__ import annotations

from collections import Counter

EPISODE_TYPES = ("useful", "recheck", "other")


def think_lines(completion: str) -> list[str] | None:
    """The non-empty lines of the ``<think> ... </think>`` region, or None without a closed region."""
    if "<think>" not in completion:
        return None
    start = completion.index("<think>") + len("<think>")
    end = completion.find("</think>", start)
    if end < 0:
        return None
    return [line.strip() for line in completion[start:end].split("\n") if line.strip()]


def episode_types(completion: str, useful_steps: list[str]) -> list[str] | None:
    """`EPISODE_TYPES` label of each think line (None when the response has no closed think region)."""
    lines = think_lines(completion)
    if lines is None:
        return None
    remaining, seen, out = Counter(useful_steps), set(), []
    for line in lines:
        if remaining[line] > 0:
            remaining[line] -= 1
            out.append("useful")
        elif line in seen:
            out.append("recheck")
        else:
            out.append("other")
        seen.add(line)
    return out
