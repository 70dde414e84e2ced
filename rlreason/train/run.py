"""`rlreason run`: build every component from the config, train with Lightning, evaluate, report.

The run directory `runs/<name>/<version>/` holds the resolved `config.yaml`, TensorBoard events,
`checkpoints/` (Lightning state + Hugging Face policy), the final policy in `policy/` (Hugging Face
format: `from_pretrained` loads it) and `results.json`.

`init.from` may name an experiment YAML: that run (e.g. the SFT warm-up) is executed first, once,
and reused by every later run whose config resolves to the same warm-up config. Paths in a loaded
config are absolute (rlreason/config.py), so the stage cache and the run directories are the same
whichever directory `rlreason run` is started from.

After training the run evaluates its task (and, with `eval.per_mode`, each forced mode) and every
`eval.suite` task with one `Evaluator` (rlreason/evaluator.py, also the periodic evaluation's);
results.json, the loggers and the HParams entry (the resolved config with the final metrics) all get
the same numbers. The run owns its verifiers (rlreason/verify/task_verifier.py) and closes them.
"""

from __future__ import annotations

import copy
import hashlib
import os
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import yaml
from omegaconf import DictConfig, OmegaConf

from rlreason.config import (
    TRAINER_RESERVED,
    Components,
    checkpoint_interval,
    flat_hparams,
    load_experiment,
    loggers_of,
    to_yaml,
    validate,
)
from rlreason.errors import ConfigError, RunInterrupted
from rlreason.evaluate import format_table, write_report
from rlreason.evaluator import EvalTask, Evaluator, eval_settings, suite_tasks
from rlreason.policy.load import format_prompt, load_policy
from rlreason.train.callbacks import (
    Checkpointer,
    ConfigLogger,
    FinalEval,
    PeriodicEval,
    SampleLogger,
    save_hf_policy,
)
from rlreason.train.data import ProblemDataModule, read_problems
from rlreason.train.faults import NonFiniteError
from rlreason.train.interrupt import GracefulInterrupt
from rlreason.train.loggers import build_loggers, check_installed
from rlreason.train.module import RLModule
from rlreason.train.preflight import check_disk_space, checkpoints_on_disk_at_once, estimate_checkpoint_bytes
from rlreason.train.progress import StepProgressBar, quiet_third_party, start_line
from rlreason.train.resume import find_resume_point
from rlreason.verify.task_verifier import RunVerifiers


def cache_dir() -> Path:
    return Path(os.environ.get("RLREASON_CACHE", Path.home() / ".cache" / "rlreason"))


def config_hash(cfg: DictConfig) -> str:
    """Identity of a stage's result: the resolved config, minus how it was started (`init.resume`) and
    how it is logged (`logging.*`: where it is written, which loggers, how often it checkpoints),
    none of which changes the trained policy."""
    data = yaml.safe_load(to_yaml(cfg))
    data.get("init", {}).pop("resume", None)
    data.pop("logging", None)
    for (section, key), default in KEYS_ADDED_LATER.items():
        if data.get(section, {}).get(key, default) == default:
            data[section].pop(key, None)
    return hashlib.sha256(yaml.safe_dump(data, sort_keys=False).encode()).hexdigest()[:10]


# Keys added after stages were cached: at their default they select the behaviour the stage had
# before the key existed, so they stay out of the hash and existing warm-ups are reused.
KEYS_ADDED_LATER = {("optim", "micro_batch_tokens"): 0, ("optim", "dedup_sequences"): False}


def next_version(root: Path) -> str:
    """`version_<n>`, the first one not yet under `root`."""
    n = 0
    while (root / f"version_{n}").exists():
        n += 1
    return f"version_{n}"


def prepare_run_dir(cfg: DictConfig, version: str | None = None) -> Path:
    root = Path(cfg.logging.dir) / cfg.name
    version = version or cfg.logging.version or next_version(root)
    run_dir = root / version
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"logging.dir: cannot write the run directory {run_dir}: {exc.strerror or exc}") from None
    (run_dir / "config.yaml").write_text(to_yaml(cfg))
    return run_dir


def resolve_init(cfg: DictConfig) -> str | None:
    """The model path a run starts from: `init.from` as a run dir, HF dir/hub name, or a YAML stage."""
    src = cfg.init.from_
    if not src:
        return None
    path = Path(src)
    if path.suffix in (".yaml", ".yml"):
        stage, components = load_experiment(path, [f"logging.dir={cfg.logging.dir}"])
        version = f"auto-{config_hash(stage)}"
        run_dir = Path(stage.logging.dir) / stage.name / version
        if not (run_dir / "policy" / "config.json").is_file():
            print(f"[rlreason] init.from: running stage {path} -> {run_dir}", flush=True)
            run_experiment(stage, components, version=version)
        return str(run_dir / "policy")
    if (path / "policy" / "config.json").is_file():  # a run directory
        return str(path / "policy")
    return src


def run_experiment(
    cfg: DictConfig,
    components: Components | None = None,
    *,
    version: str | None = None,
    resume_hint: str | None = None,
) -> Path:
    """Train and evaluate one experiment; returns its run directory.

    `components`: what validating `cfg` built (`load_experiment`); built here when not given.
    `resume_hint` is the command printed if Ctrl-C stops the run (default: re-run the saved config).
    The run owns its verifiers: their worker processes end with it, also on an error or Ctrl-C."""
    components = components or validate(cfg)
    with RunVerifiers() as verifiers:
        return _run_experiment(cfg, components, verifiers, version, resume_hint)


def _run_experiment(
    cfg: DictConfig, components: Components, verifiers: RunVerifiers, version: str | None, resume_hint: str | None
) -> Path:
    quiet_third_party()
    check_installed(loggers_of(cfg))
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    resume_dir, resume_ckpt = find_resume_point(cfg)
    if resume_dir is not None and (resume_dir / "results.json").is_file():
        print(f"[rlreason] {resume_dir} already finished (results.json exists); nothing to resume", flush=True)
        return resume_dir
    task, algo, reward = components.task, components.algo, components.reward
    # the data before any init.from stage runs or model loads: file:line errors, no train split
    train_problems, eval_problems = read_problems(task, cfg.eval.split, cfg.eval.n)
    suite = suite_tasks(cfg, components.suite, verifiers.for_task)  # the end-of-training benchmarks' data too
    init_path = resolve_init(cfg)
    model_cfg = copy.deepcopy(cfg.model)
    if init_path is not None:
        model_cfg.name_or_path = init_path
    # quiet: the control tokens are part of the start line printed below
    policy, tokenizer, control = load_policy(model_cfg, cache_dir=cache_dir(), training=True, quiet=True)
    if cfg.model.gradient_checkpointing:
        (getattr(policy, "activation_checkpointing_enable", None) or policy.gradient_checkpointing_enable)()
    every = checkpoint_interval(cfg, algo.needs_rollout)
    _check_disk_for_checkpoints(cfg, policy, resume_dir or Path(cfg.logging.dir), every)
    # only once every component has loaded; a resumed run keeps its directory and saved config
    run_dir = resume_dir or prepare_run_dir(cfg, version)
    print(start_line(cfg, run_dir, model_cfg.name_or_path, policy, control, len(train_problems), len(eval_problems)))
    # with LoRA the reference is the policy with its adapters disabled: no copy (rlreason/policy/lora.py)
    ref = copy.deepcopy(policy).eval().requires_grad_(False) if algo.beta > 0 and not cfg.model.lora else None
    verifier = verifiers.for_task(task)
    per_rank = cfg.rollout.prompts_per_step if algo.needs_rollout else cfg.optim.batch_size
    datamodule = ProblemDataModule(train_problems, cfg.optim.steps, per_rank, cfg.seed)

    def fmt(text: str) -> str:
        return format_prompt(tokenizer, text, model_cfg)

    module = RLModule(
        cfg,
        policy,
        tokenizer,
        control,
        algo,
        reward,
        verifier=verifier,
        ref_policy=ref,
        answer_cue=task.answer_cue,
        format_prompt=fmt,
    )
    evaluator = Evaluator(
        policy,
        tokenizer,
        control,
        fmt,
        eval_settings(cfg),
        EvalTask(str(cfg.task.name), eval_problems, verifier),
        suite=suite,
        per_mode=cfg.eval.per_mode,
        chat_template=cfg.model.use_chat_template,
    )
    checkpointer = Checkpointer(run_dir, every, cfg.logging.keep_last_n)
    interrupt = GracefulInterrupt(checkpointer)
    final_eval = FinalEval(evaluator, interrupt, hparams=_hparams(cfg))
    callbacks: list[pl.Callback] = [
        ConfigLogger(to_yaml(cfg)),
        final_eval,
        SampleLogger(cfg.logging.samples_every_n_steps, cfg.logging.num_samples, cfg.logging.histograms),
        PeriodicEval(evaluator, cfg.eval.every_n_steps, cfg.eval.at_start),
        checkpointer,
        interrupt,  # last: a Ctrl-C checkpoint holds everything the step's other callbacks did
    ]
    if cfg.logging.progress_bar:
        callbacks.append(StepProgressBar("RL step" if algo.needs_rollout else "SFT step"))
    trainer = _build_trainer(cfg, run_dir, callbacks)
    if resume_ckpt is not None:
        print(f"[rlreason] resuming {run_dir} from {resume_ckpt.name}", flush=True)
    t0 = time.time()
    with interrupt:  # SIGINT -> checkpoint at the next step boundary (rlreason/train/interrupt.py)
        try:
            trainer.fit(
                module,
                datamodule=datamodule,
                ckpt_path=str(resume_ckpt) if resume_ckpt else None,
                weights_only=True,
            )
        except NonFiniteError as exc:
            # skipped updates left the parameters at the last good state: keep it, then stop
            ckpt = checkpointer.save(trainer, module, exc.steps_done, suffix="-stopped")
            raise NonFiniteError(
                f"{exc}; last good state saved to {ckpt} (resume with init.resume={ckpt})", exc.steps_done
            ) from None
    if interrupt.interrupted:
        hint = resume_hint or f"rlreason run {run_dir / 'config.yaml'} init.resume={run_dir}"
        raise RunInterrupted(
            f"interrupted at step {interrupt.step}/{cfg.optim.steps}; checkpoint {interrupt.checkpoint}; "
            f"resume with: {hint}"
        )
    train_time = time.time() - t0
    results, records = final_eval.results, final_eval.records
    if trainer.is_global_zero:
        save_hf_policy(module, run_dir / "policy")
        results.update({"train_time_s": train_time, "steps": final_eval.step})
        write_report(run_dir / "results.json", results, records)
        print(f"\n{cfg.name} ({run_dir}): {train_time:.0f}s training\n{format_table(results)}", flush=True)
    return run_dir


def _hparams(cfg: DictConfig) -> dict[str, Any]:
    return flat_hparams(yaml.safe_load(to_yaml(cfg)))


def _check_disk_for_checkpoints(cfg: DictConfig, policy: torch.nn.Module, where: Path, every: int) -> None:
    """Refuse to start when the checkpoints this run will keep at once (and its final policy) cannot fit."""
    n = sum(p.numel() for p in policy.parameters())
    at_once = checkpoints_on_disk_at_once(cfg.logging.keep_last_n, cfg.optim.steps, every)
    check_disk_space(where, estimate_checkpoint_bytes(n, cfg.optim.optimizer) * at_once + 4 * n)


def _build_trainer(cfg: DictConfig, run_dir: Path, callbacks: list[pl.Callback]) -> pl.Trainer:
    kwargs: dict[str, Any] = {
        "accelerator": "auto",
        "devices": 1,
        "max_epochs": 1,
        "logger": build_loggers(cfg, run_dir),
        "callbacks": callbacks,
        "enable_checkpointing": False,
        "num_sanity_val_steps": 0,
        "use_distributed_sampler": False,
        "enable_model_summary": False,
        "log_every_n_steps": cfg.logging.every_n_steps,
        "enable_progress_bar": cfg.logging.progress_bar,
        "default_root_dir": str(run_dir),
    }
    user = OmegaConf.to_container(cfg.trainer, resolve=True)
    assert isinstance(user, dict)
    for key in user:  # validate() refuses these at load time; a config built in code may skip it
        if key in TRAINER_RESERVED:
            raise ConfigError(f"trainer.{key}: set by rlreason (use optim.steps / logging.*), remove it")
    kwargs.update(user)
    kwargs.setdefault("precision", {"bfloat16": "bf16-mixed", "float16": "16-mixed"}.get(cfg.model.dtype, "32-true"))
    try:
        return pl.Trainer(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"trainer: {exc}") from None
    except Exception as exc:  # Lightning's MisconfigurationException and friends
        raise ConfigError(f"trainer: {str(exc).splitlines()[0]}") from None


def run_from_cli(config: str, overrides: list[str]) -> int:
    """`rlreason run CONFIG [overrides]`; a Ctrl-C'd run says to repeat the command with --resume."""
    import shlex

    args = [a for a in overrides if a != "init.resume=auto"]
    hint = "rlreason run " + shlex.join([config, *args, "--resume"])
    run_experiment(*load_experiment(config, overrides), resume_hint=hint)
    return 0
