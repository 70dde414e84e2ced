"""Every adaptive-thinking lab recipe runs two real lab steps through the CLI (tiny model, in process)
and logs what its method is about; the ablation's cells all validate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tests_helpers import TINY_LAB

from rlreason.ablate import load_ablation
from rlreason.cli import main
from rlreason.config import load_config

TINY = TINY_LAB
RL = ["optim.steps=2", "rollout.prompts_per_step=3", "rollout.group_size=4", "rollout.max_new_tokens=16"]


def scalar_tags(run_dir: Path) -> dict[str, list[float]]:
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {t: [e.value for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


# config, extra overrides, tags the run must log every step
RECIPES = [
    ("adaptthink", ["reward.samples=2"], ["reward/adaptthink/ref_think_acc", "rollout/forced_short_share"]),
    (
        "ada_grpo",
        ["rollout.sampler=forced_mode", "rollout.sampler_share=0.3"],
        ["reward/ada_grpo/alpha_mean", "rollout/forced_short_share"],
    ),
    # stage 3 with stage 1's balancing switched back on: both halves of the reward in one run
    ("autothink_stage3", ["reward.balance_rate=0.5"], ["reward/autothink/balance_think", "reward/autothink/mean"]),
    # the truncation reward (stage budgets: test_stage_configs_chain_through_init_from) with DLER's options
    ("dler", [], ["reward/truncation/unfinished_frac", "reward/truncation/easy_frac", "algo/ds_dropped_frac"]),
    ("lc_r1", [], ["reward/terms/1_lc_r1_length/mean"]),
    ("pass_rate_length", [], ["reward/pass_rate_length/penalty_mean"]),
]


@pytest.mark.parametrize("name, extra, tags", RECIPES, ids=[r[0] for r in RECIPES])
def test_recipe_runs_two_lab_steps_through_the_cli(tmp_path, tiny_sft_policy, name, extra, tags):
    config = f"experiments/lab/{name}.yaml"
    assert main(["run", config, *TINY, *RL, f"init.from={tiny_sft_policy}", f"logging.dir={tmp_path}", *extra]) == 0
    run_dir = next(tmp_path.glob("*/version_0"))
    logged = scalar_tags(run_dir)
    for tag in tags:
        assert len(logged.get(tag, [])) == 2, tag  # logged at both steps
    results = json.loads((run_dir / "results.json").read_text())["lab-arith"]
    assert results["n"] == 6 and set(results["per_difficulty"]) == {"easy", "medium", "hard"}
    if name == "adaptthink":
        # the initial policy's think accuracy per problem, from K = 2 forced-think samples each
        ref = json.loads((run_dir / "adaptthink_ref.json").read_text())
        assert len(ref) == 6 and all(v in (0.0, 0.5, 1.0) for v in ref.values())
        assert logged["rollout/forced_short_share"] == [0.5, 0.5]  # paired: G/2 per mode


def test_stage_configs_chain_through_init_from():
    chain = {
        "autothink_stage3": "autothink.yaml",
        "truncation_stage2": "truncation.yaml",
        "truncation_stage3": "truncation_stage2.yaml",
    }
    budgets = {"truncation": 40, "truncation_stage2": 32, "truncation_stage3": 24}
    for name, parent in chain.items():
        assert Path(load_config(f"experiments/lab/{name}.yaml").init.from_).name == parent
    for name, budget in budgets.items():
        assert load_config(f"experiments/lab/{name}.yaml").reward.budget == budget


def test_ablation_adaptive_cells_all_validate():
    spec, cells = load_ablation(Path("experiments/lab/ablation_adaptive.yaml"))
    assert len(cells) == 30  # 8 methods x 2 samplers x 2 seeds, AdaptThink only with its sampler
    methods = {c.name.split("-")[0] for c in cells}
    assert methods == {
        f"method={m}"
        for m in ("grpo", "thinkless", "adaptthink", "ada_grpo", "autothink", "dler", "lc_r1", "pass_rate_length")
    }
    assert not any(c.name.startswith("method=adaptthink-sampler=none") for c in cells)
    budget = load_config(spec["base"]).optim.steps  # every method gets the recipe's step budget
    for cell in cells:
        cfg = load_config(spec["base"], cell.overrides)
        assert cfg.optim.steps == budget == 200, cell.name


def test_report_columns_per_level_think_and_steps_to_hard_think():
    from rlreason.ablate.report import first_step_above, per_level_think

    # mean over seeds per step: 0.25, 0.5 (not above), 0.75 -> the third step (1-based)
    points = [(0, 0.0), (0, 0.5), (1, 0.5), (1, 0.5), (2, 1.0), (2, 0.5)]
    assert first_step_above(points, 0.5) == 3
    assert first_step_above(points[:4], 0.5) is None
    runs = [
        {"per_difficulty": {"easy": {"think_ratio": 0.2}, "hard": {"think_ratio": 1.0}}},
        {"per_difficulty": {"easy": {"think_ratio": 0.4}, "hard": {"think_ratio": 0.5}}},
    ]
    assert per_level_think(runs) == pytest.approx({"think_easy": 0.3, "think_hard": 0.75})


def test_report_marks_the_think_curve_of_forced_mode_cells():
    """Under a mode sampler the sampled think ratio is the sampler's share: no 'steps to' figure."""
    from rlreason.ablate.report import CellRuns, aggregate_seeds, markdown_table

    summary = {"accuracy": 0.8, "mean_response_tokens": 20.0, "think_ratio": 0.5, "train_time_s": 1.0}
    curve = [(0, 0.4), (1, 0.6), (2, 0.95)]
    free = aggregate_seeds("free", CellRuns([summary], curve, curve))
    forced = aggregate_seeds("forced", CellRuns([summary], curve, curve, forced_modes=True))
    assert (free["steps_to_hard_think"], free["steps_to_hard_think_90"]) == (2, 3)
    assert forced["steps_to_hard_think"] is None and forced["modes_forced"]
    table = markdown_table([free, forced], set()).splitlines()
    assert "| 2 | 3 |" in table[2] and "| forced | forced |" in table[3]
