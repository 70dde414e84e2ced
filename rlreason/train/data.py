"""Serving problems to the training loop, one optimisation batch per step.

Step k of the run gets a fixed list of problems, chosen from a seeded permutation of the train
split (a new permutation each pass through the data). Under DDP each rank takes its own slice of the
step's global draw, so ranks never see the same prompt in a step and the union over ranks equals
what a single process with the same global batch would see. Because the batch is a pure function of
(seed, step, rank), resuming at step k needs only k (`StepLoader.state_dict`).
"""

from __future__ import annotations

import random
from typing import Any

import pytorch_lightning as pl
from torch.utils.data import DataLoader, Dataset

from rlreason.errors import DataError
from rlreason.tasks.base import Problem, Task


def read_problems(task: Task, eval_split: str, eval_n: int) -> tuple[list[Problem], list[Problem]]:
    """The train split and the first `eval_n` (0: all) problems of `eval_split`, read in full now.

    `rlreason run` calls this before an `init.from` stage runs or a model loads, so a malformed line
    (`file:line`), a missing file or a task without a train split fails in seconds, not after them.
    """
    train = task.problems("train")
    if not train:
        raise DataError(f"task.name: the train split of task '{type(task).__name__}' is empty")
    evaluation = task.problems(eval_split)
    return train, evaluation[:eval_n] if eval_n else evaluation


class StepDataset(Dataset):
    """Item k = the problems of step k for this rank."""

    def __init__(
        self, problems: list[Problem], steps: int, per_rank: int, seed: int, rank: int = 0, world_size: int = 1
    ) -> None:
        if not problems:
            raise ValueError("the task's train split is empty")
        self.problems, self.steps, self.per_rank = problems, steps, per_rank
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self._perms: dict[int, list[int]] = {}

    def __len__(self) -> int:
        return self.steps

    def _perm(self, epoch: int) -> list[int]:
        if epoch not in self._perms:
            order = list(range(len(self.problems)))
            random.Random(f"{self.seed}:{epoch}").shuffle(order)
            self._perms = {epoch: order}
        return self._perms[epoch]

    def global_indices(self, step: int) -> list[int]:
        """Problem indices of the whole step (all ranks), in rank order."""
        n_global = self.per_rank * self.world_size
        start = step * n_global
        out = []
        for pos in range(start, start + n_global):
            epoch, offset = divmod(pos, len(self.problems))
            out.append(self._perm(epoch)[offset])
        return out

    def __getitem__(self, step: int) -> list[Problem]:
        idx = self.global_indices(step)[self.rank * self.per_rank : (self.rank + 1) * self.per_rank]
        return [self.problems[i] for i in idx]


def _identity(x: Any) -> Any:
    return x


class StepLoader(DataLoader):
    """A DataLoader that can start at step k: Lightning saves its `state_dict` in every checkpoint and
    hands it back on resume, so a resumed run trains on step k's batch next, not on step 0's again.

    The position saved is the number of steps the trainer has *processed*, read from the trainer
    rather than counted here, because Lightning fetches one batch ahead of the step it runs.
    """

    def __init__(self, dataset: StepDataset, progress: Any) -> None:
        super().__init__(dataset, batch_size=None, shuffle=False, num_workers=0, collate_fn=_identity)
        self._progress, self._start = progress, 0

    def __iter__(self) -> Any:
        start, self._start = self._start, 0
        return (self.dataset[k] for k in range(start, len(self.dataset)))

    def state_dict(self) -> dict[str, int]:
        return {"next_step": int(self._progress())}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._start = int(state["next_step"])


class ProblemDataModule(pl.LightningDataModule):
    """Serves `per_rank` problems per step for `steps` steps (prompts for RL, examples for SFT)."""

    def __init__(self, problems: list[Problem], steps: int, per_rank: int, seed: int) -> None:
        super().__init__()
        self.problems, self.steps, self.per_rank, self.seed = problems, steps, per_rank, seed

    def train_dataloader(self) -> DataLoader:
        rank = self.trainer.global_rank if self.trainer else 0
        world = self.trainer.world_size if self.trainer else 1
        ds = StepDataset(self.problems, self.steps, self.per_rank, self.seed, rank, world)
        return StepLoader(ds, lambda: self.trainer.fit_loop.epoch_loop.batch_progress.current.processed)
