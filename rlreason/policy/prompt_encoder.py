"""Prompt text -> token ids, formatted once per problem and cached by problem uid; SFT targets ->
token ids + EOS, cached by their text.

Shared by the rollout of every RL step and SFT step (the same problem comes back every epoch) and
by evaluation, so the policy sees prompts tokenised the same way in training and in evaluation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rlreason.tasks.base import Problem


class PromptEncoder:
    def __init__(self, tokenizer: Any, format_prompt: Callable[[str], str] | None, *, chat_template: bool) -> None:
        self.tokenizer = tokenizer
        self.format_prompt = format_prompt or (lambda text: text)
        self.add_special_tokens = not chat_template  # a chat template writes its own special tokens
        self._cache: dict[str, list[int]] = {}
        self._targets: dict[str, list[int]] = {}

    def __call__(self, problem: Problem) -> list[int]:
        ids = self._cache.get(problem.uid)
        if ids is None:
            text = self.format_prompt(problem.prompt)
            ids = self.tokenizer(text, add_special_tokens=self.add_special_tokens)["input_ids"]
            self._cache[problem.uid] = ids
        return ids

    def encode_target(self, text: str) -> list[int]:
        """A supervised target's token ids (no special tokens) followed by EOS."""
        ids = self._targets.get(text)
        if ids is None:
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"] + [self.tokenizer.eos_token_id]
            self._targets[text] = ids
        return list(ids)
