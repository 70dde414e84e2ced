"""Registered algos; importing this package registers the built-in ones."""
import rlreason.algos.sft  # noqa: F401
