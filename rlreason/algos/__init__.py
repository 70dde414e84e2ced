"""Registered algos; importing this package registers the built-in ones."""
import rlreason.algos.sft  # noqa: F401
import rlreason.algos.grpo  # noqa: F401
import rlreason.algos.degrpo  # noqa: F401
import rlreason.algos.l2t_ppo  # noqa: F401
