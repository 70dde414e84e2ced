"""Registered algos; importing this package registers the built-in ones."""

import rlreason.algos.degrpo
import rlreason.algos.grpo
import rlreason.algos.l2t_ppo
import rlreason.algos.sft  # noqa: F401
