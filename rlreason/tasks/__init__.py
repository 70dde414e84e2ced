"""Registered tasks; importing this package registers the built-in ones."""
import rlreason.tasks.lab_arith  # noqa: F401
import rlreason.tasks.benchmarks  # noqa: F401
