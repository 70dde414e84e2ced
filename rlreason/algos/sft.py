"""`sft`: supervised fine-tuning on target responses (warm-up / distillation).

Details: docs/algorithms.md#sft
"""

from __future__ import annotations

import torch

from rlreason.algos.base import Algorithm, LossInputs
from rlreason.registry import ALGOS


@ALGOS.register("sft")
class SFT(Algorithm):
    """Next-token cross-entropy on response tokens only (the control token included).

    L = - sum_{i,t} m_{i,t} log pi_theta(o_{i,t} | x_i, o_{i,<t}) / sum_{i,t} m_{i,t}   (token mean)

    With ``normalization: sequence`` each response is averaged over its own tokens first and the
    result averaged over responses, so long responses do not dominate.
    """

    needs_rollout = False
    min_group_size = 1

    def __init__(self, normalization: str = "token") -> None:
        if normalization not in ("token", "sequence"):
            raise ValueError(f"normalization: expected 'token' or 'sequence', got {normalization!r}")
        self.normalization = normalization

    def loss(self, inp: LossInputs) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        nll = -(inp.logprobs * inp.mask)
        if self.normalization == "token":
            loss = nll.sum() / inp.num_tokens
        else:
            loss = (nll.sum(-1) / inp.mask.sum(-1).clamp(min=1)).sum() / inp.num_seqs
        tokens_correct = (inp.logprobs.detach() > -0.6931) * inp.mask  # p > 0.5: the argmax token
        return loss, {"nll": nll.detach().sum() / inp.num_tokens, "token_acc": tokens_correct.sum() / inp.num_tokens}
