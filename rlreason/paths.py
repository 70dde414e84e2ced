"""Where the shared benchmark data lives.

The benchmark files are never copied into the project: they are read from `$RLREASON_DATA`, or
from `../shared/data` beside the repository checkout.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    env = os.environ.get("RLREASON_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"
