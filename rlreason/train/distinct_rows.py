"""Forward (and backward) each distinct sequence of a micro-batch once (`optim.dedup_sequences`).

A sharp policy samples the same response several times for a prompt: at the start of the lab GRPO
run 42-46 % of the 128 samples of a step are distinct. Copies have the same tokens, so the same
log-probabilities; `distinct_logprobs` runs the model on one row per distinct (prompt, response)
and indexes the result back to every row. The loss still sees every sample, and the backward of the
indexing sums the copies' gradients into their row: the same gradient, with the sums grouped
differently (float rounding), which is why it is an option. With no copies in a micro-batch the
plain pass runs, bit for bit.
"""

from __future__ import annotations

from typing import Any

import torch

from rlreason.batch import distinct_rows
from rlreason.train.forward import TokenOutputs, response_logprobs


def distinct_logprobs(
    model: torch.nn.Module,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    response_ids: torch.Tensor,
    response_mask: torch.Tensor,
    **kwargs: Any,
) -> TokenOutputs:
    """`response_logprobs` computed on the distinct rows only and indexed back to every row."""
    found = distinct_rows(prompt_ids, prompt_mask, response_ids, response_mask)
    if found is None:
        return response_logprobs(model, prompt_ids, prompt_mask, response_ids, response_mask, **kwargs)
    reps, owner = found
    out = response_logprobs(
        model, prompt_ids[reps], prompt_mask[reps], response_ids[reps], response_mask[reps], **kwargs
    )

    def back(x: torch.Tensor | None) -> torch.Tensor | None:
        return None if x is None else x[owner]

    return TokenOutputs(logprobs=out.logprobs[owner], entropy=back(out.entropy), hidden=back(out.hidden))
