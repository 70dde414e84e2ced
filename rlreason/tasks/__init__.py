"""Registered tasks; importing this package registers the built-in ones."""

import rlreason.tasks.benchmarks
import rlreason.tasks.lab_arith
import rlreason.tasks.paired  # noqa: F401
