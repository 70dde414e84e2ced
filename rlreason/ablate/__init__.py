"""`rlreason ablate ABLATION.yaml` and `rlreason report SWEEP_DIR`: grids of ordinary runs.

An ablation file names a base experiment and a grid over any config keys::

    base: grpo.yaml                   # relative to this file
    name: lab-ablation                # sweep directory: <logging.dir>/<name>
    grid:
      reward: [{name: binary}, {name: thinkless}]
      algo: [{name: grpo}, {name: degrpo}]
      seed: [0, 1]
    exclude:                          # cells matching every key of an entry are skipped
      - {reward.name: info_gain, algo.name: degrpo}
    overrides: [optim.steps=30]       # applied to every cell

A grid may also have the key `method`: each value is a bundle of config keys set together (a
published method is a reward *and* an algorithm *and* perhaps a rollout option), named by its
`label`: ``method: [{label: arm, reward: {name: ada_grpo}, algo: {name: grpo}}, ...]``.

Every cell is validated before any runs (a bad key or component fails the whole sweep in one
line), then run as an ordinary `rlreason run` in a subprocess (`--workers N` at a time) into
`<sweep>/runs/<experiment name>/<cell>`. Finished cells (a results.json) are skipped, so a killed sweep
continues where it stopped; a failed cell is retried once and reported. Ctrl-C lets every running cell
checkpoint (each exits 130), starts no new cell and exits 130: the same command continues the sweep.
Each cell's run directory gets a `cell.json` (its cell, grid values, seed, overrides) before the run
starts; `summary.md`, `summary.csv`, `pareto.png` and `think_ratio.png` are rebuilt from the run
directories alone (`rlreason report`), grouped by those files.

Modules: `spec` (the file and its cells), `cell_file` (cell.json), `runner` (one cell, a sweep),
`report` (aggregate over seeds, Pareto front, CSV + markdown, plots, HParams).
"""

from rlreason.ablate.report import cell_hparams, write_report
from rlreason.ablate.runner import run_cell, run_sweep
from rlreason.ablate.spec import Cell, load_ablation

__all__ = ["Cell", "cell_hparams", "load_ablation", "run_cell", "run_sweep", "write_report"]
