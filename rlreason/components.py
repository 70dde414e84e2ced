"""Imports the built-in components so that their `register` decorators run."""

import rlreason.algos
import rlreason.rewards
import rlreason.tasks
import rlreason.verify  # noqa: F401
