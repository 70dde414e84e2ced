"""Registered rewards; importing this package registers the built-in ones."""

import rlreason.rewards.adaptthink
import rlreason.rewards.binary
import rlreason.rewards.budget
import rlreason.rewards.combine
import rlreason.rewards.info_gain
import rlreason.rewards.length
import rlreason.rewards.mode_rewards
import rlreason.rewards.thinkless  # noqa: F401
