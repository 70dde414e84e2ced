"""Prompt templates for real benchmarks (`task.template`).

- ``plain``: the problem as is.
- ``boxed``: the problem, then the instruction used by DeepSeek-R1-Distill / Qwen2.5-Math evaluation.
- ``thinkless``: Thinkless's evaluation prompt, instruction first (VainF/Thinkless @ aa225d2,
  eval_configs/deepseek/*/*.yaml `doc_to_text`, and the README's quick start). Its RL prompts are
  the bare problem (``plain``: scripts/data/prepare_deepscaler_for_RL.py lines 29-32 comment the
  instruction out).
- ``l2t``: the episode-tag instruction in the spirit of L2T's system prompt: reason in numbered
  ``<episode_k>`` blocks, then the boxed answer (paraphrased; not re-verified against the paper's
  exact wording in this session).
"""

from __future__ import annotations

BOXED = "{problem}\nPlease reason step by step, and put your final answer within \\boxed{{}}."

TEMPLATES: dict[str, str] = {
    "plain": "{problem}",
    "boxed": BOXED,
    "thinkless": "Please reason step by step, and put your final answer within \\boxed{{}}.\n{problem}",
    "l2t": (
        "{problem}\nSolve the problem step by step. Write each reasoning step as an episode enclosed in "
        "<episode_1>...</episode_1>, <episode_2>...</episode_2>, and so on, then put your final answer "
        "within \\boxed{{}}."
    ),
}

L2T_SYSTEM_PROMPT = (
    "You are a helpful assistant. Reason in episodes: enclose the k-th reasoning step in "
    "<episode_k>...</episode_k>, stop as soon as you know the answer, and put the final answer within \\boxed{}."
)


def render(template: str, problem: str) -> str:
    return TEMPLATES[template].format(problem=problem)
