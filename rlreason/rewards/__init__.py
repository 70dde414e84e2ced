"""Registered rewards; importing this package registers the built-in ones."""
import rlreason.rewards.binary  # noqa: F401
import rlreason.rewards.length  # noqa: F401
import rlreason.rewards.thinkless  # noqa: F401
import rlreason.rewards.combine  # noqa: F401
import rlreason.rewards.info_gain  # noqa: F401
