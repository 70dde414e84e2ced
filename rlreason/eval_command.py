"""`rlreason eval`: evaluate a model (a run's final policy, or a config's model / init) on the config's
task, its forced modes (`eval.per_mode`) and its `eval.suite`, exactly as a run's final evaluation.

Given a run directory, results go to `<run dir>/eval/` (that version's own folder); given a YAML, to
`<logging.dir>/<name>/eval/version_<n>/`; `--out` names the results file. Each task prints a line
when it starts and ends. An `init.from` YAML stage that has not run yet is run first (rlreason/train/run.py).
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

from rlreason.config import load_experiment
from rlreason.errors import ConfigError
from rlreason.evaluate import format_table, write_report
from rlreason.evaluator import EvalTask, Evaluator, eval_settings, eval_subset, suite_tasks
from rlreason.policy.load import format_prompt, load_policy
from rlreason.train.progress import quiet_third_party
from rlreason.train.run import cache_dir, next_version, resolve_init
from rlreason.verify.task_verifier import RunVerifiers


def eval_from_cli(args: Any) -> int:
    """The `rlreason eval` subcommand (argparse namespace: config, overrides, model, out)."""
    return evaluate_from_cli(args.config, args.overrides, model=args.model, out=args.out)


def evaluate_from_cli(config: str, overrides: list[str], *, model: str | None, out: str | None) -> int:
    """Evaluate `model` (default: the run's policy, or the config's init / model) and write the results."""
    quiet_third_party()
    cfg_path, run_dir = Path(config), None
    if cfg_path.is_dir():  # a run directory: its own config and final policy
        run_dir = cfg_path.resolve()
        if not (run_dir / "config.yaml").is_file():
            raise ConfigError(f"{config}: not a run directory (no config.yaml)")
        model = model or str(run_dir / "policy")
        cfg_path = run_dir / "config.yaml"
    cfg, components = load_experiment(cfg_path, overrides)
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.name_or_path = model or resolve_init(cfg) or cfg.model.name_or_path
    if out:
        out_path = Path(out)
    elif run_dir is not None:
        out_path = run_dir / "eval" / "results.json"
    else:
        evals = Path(cfg.logging.dir) / cfg.name / "eval"
        out_path = evals / next_version(evals) / "results.json"
    with RunVerifiers() as verifiers:  # their worker processes end with the command
        # the data first (file:line errors, missing files) so that a bad path fails before the model loads
        task = components.task
        problems = eval_subset(task.problems(cfg.eval.split), cfg.eval.n)
        main = EvalTask(str(cfg.task.name), problems, verifiers.for_task(task))
        suite = suite_tasks(cfg, components.suite, verifiers.for_task)
        policy, tokenizer, control = load_policy(model_cfg, cache_dir=cache_dir())
        evaluator = Evaluator(
            policy,
            tokenizer,
            control,
            lambda text: format_prompt(tokenizer, text, model_cfg),
            eval_settings(cfg),
            main,
            suite=suite,
            per_mode=cfg.eval.per_mode,
            chat_template=cfg.model.use_chat_template,
        )
        report = evaluator.evaluate_all(progress=True)
    report.results["model"] = model_cfg.name_or_path
    write_report(out_path, report.results, report.tagged_records())
    print(format_table(report.results))
    print(f"results: {out_path}", file=sys.stderr)
    return 0
