"""Imports the built-in components so that their `register` decorators run (rewards, algorithms,
tasks, verifiers, and the optimisers, schedules and rollout backends a config names)."""

import rlreason.algos
import rlreason.policy.rollout
import rlreason.policy.vllm_engine
import rlreason.rewards
import rlreason.tasks
import rlreason.train.optim
import rlreason.verify  # noqa: F401
