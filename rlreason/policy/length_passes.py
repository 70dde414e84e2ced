"""Grouping sequences of different lengths into padded passes with little padding.

Used by the `fast` info-gain path (`rlreason.rewards.info_gain`): a pass of right-padded rows costs
rows x width, so rows of similar length go together. Values then depend on the grouping only
through floating-point rounding (kernels reduce over the padded width), which is why the exact
path keeps its fixed grouping.
"""

from __future__ import annotations


def length_sorted_passes(lengths: list[int], max_rows: int) -> list[list[int]]:
    """Indices grouped into passes by ascending length: at most `max_rows` rows per pass and at most
    max_rows x mean(length) padded tokens, so a pass of short rows takes more of them and none is
    larger than `max_rows` rows of average length (a row longer than that goes alone)."""
    if not lengths:
        return []
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    budget = max(1, max_rows) * max(1.0, sum(lengths) / len(lengths))
    passes: list[list[int]] = [[]]
    for i in order:
        rows = passes[-1]
        if rows and (len(rows) >= max_rows or (len(rows) + 1) * lengths[i] > budget):
            passes.append([])
        passes[-1].append(i)
    return passes
