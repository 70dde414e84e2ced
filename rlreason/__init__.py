"""rlreason: reinforcement fine-tuning of language models for efficient reasoning."""

from rlreason.registry import ALGOS, REWARDS, TASKS, VERIFIERS, Registry

__version__ = "0.1.0"
__all__ = ["ALGOS", "REWARDS", "TASKS", "VERIFIERS", "Registry", "__version__"]
