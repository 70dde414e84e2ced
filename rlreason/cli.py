"""Command line: `rlreason list | verify | run | eval | ablate | report`.

User mistakes (bad config, unknown component, malformed data) print one line and exit with status 2;
a run stopped by repeated non-finite updates prints one line and exits with status 3 (its last good
state is checkpointed); Ctrl-C checkpoints at the next step boundary and exits with status 130 after
one line that says how to resume; only bugs show a traceback.

Flags and `key=value` overrides may be given in any order (`run X.yaml --resume optim.lr=1e-5`):
each subcommand is parsed with `argparse`'s intermixed parsing.

A command imports what it runs inside its function (torch, transformers and Lightning take seconds),
so `rlreason --help` starts without them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rlreason import __version__
from rlreason.errors import RLReasonError
from rlreason.registry import CHOICE_REGISTRIES, REGISTRIES


def _cmd_list(args: argparse.Namespace) -> int:
    if args.kind == "config":
        return _list_config()
    import inspect

    import rlreason.components  # noqa: F401  (deferred, as each command's imports: torch; --help stays fast)

    listed = {**REGISTRIES, **CHOICE_REGISTRIES}
    for kind in [args.kind] if args.kind else list(listed):
        print(f"{kind}:")
        for name, doc, params in listed[kind].describe():
            print(f"  {name:<16} {doc}")
            if kind not in REGISTRIES:
                continue  # an optimiser / schedule / backend takes framework arguments, not config keys
            for p in params:
                default = "(required)" if p.default is inspect.Parameter.empty else f"= {p.default!r}"
                print(f"      {p.name} {default}")
    return 0


def _list_config() -> int:
    """Every config key, section by section: `key: type = default  doc`, defaults written as in YAML."""
    import json

    from rlreason.config import field_docs  # config registers the components (torch); their names are documented

    for section, doc, keys in field_docs():
        print(f"{section}: {doc.strip().splitlines()[0] if doc.strip() else ''}".rstrip())
        for k in keys:
            if k.registry in CHOICE_REGISTRIES:
                names = " | ".join(CHOICE_REGISTRIES[k.registry].names())
                extra = f" (one of: {names}; `rlreason list {k.registry}`)"
            elif k.registry:
                extra = f" (`rlreason list {k.registry}`)"
            else:
                extra = f" (one of: {' | '.join(k.choices)})" if k.choices else ""
            print(f"  {k.key}: {k.type} = {json.dumps(k.default)}  {k.doc}{extra}")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from rlreason.verify.cli import verify_file  # the verify package: +~100 ms on every start

    return verify_file(args)


def _cmd_run(args: argparse.Namespace) -> int:
    if args.print_config:
        from rlreason.config import load_config, to_yaml  # config registers the components: torch

        print(to_yaml(load_config(args.config, args.overrides)), end="")
        return 0
    from rlreason.train.run import run_from_cli  # torch, transformers, lightning

    overrides = [*args.overrides, "init.resume=auto"] if args.resume else args.overrides
    return run_from_cli(args.config, overrides)


def _cmd_eval(args: argparse.Namespace) -> int:
    from rlreason.eval_command import eval_from_cli  # torch, transformers, lightning

    return eval_from_cli(args)


def _cmd_ablate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rlreason.ablate import run_sweep  # loads configs, which register the components: torch

    run_sweep(Path(args.ablation), workers=args.workers, extra=args.overrides)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rlreason.ablate import write_report  # loads configs, which register the components: torch

    write_report(Path(args.sweep_dir))  # refuses, in one line, a directory that holds no sweep
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser (`--version`, `--help`, one subparser per command)."""
    return _parsers()[0]


def _parsers() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(prog="rlreason", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"rlreason {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    overrides_help = "key=value config overrides (e.g. optim.lr=1e-5), before or after the flags"

    p = sub.add_parser("list", help="registered components and their parameters, or (`list config`) every config key")
    kinds = ["config", *REGISTRIES, *CHOICE_REGISTRIES]
    p.add_argument(
        "kind", nargs="?", choices=kinds, help="only this registry, or config: every key, type, default, doc"
    )
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("verify", help="grade a JSONL of predictions against gold answers")
    p.add_argument("predictions", help="JSONL file, one object per line")
    p.add_argument("--response-field", default="response", help="field holding the model response (default: response)")
    p.add_argument("--gold-field", default="gold", help="field holding the gold answer (default: gold)")
    p.add_argument("--verifier", default="math", help="registered verifier (see `rlreason list verifiers`)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per answer")
    p.add_argument("--workers", type=int, default=0, help="worker processes (0: one per core)")
    p.add_argument("--out", default=None, help="per-item results JSONL (default: <predictions>.graded.jsonl)")
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser("run", help="train (and evaluate) an experiment")
    p.add_argument("config", help="experiment YAML (or a run's saved config.yaml)")
    p.add_argument("overrides", nargs="*", help=overrides_help)
    p.add_argument(
        "--resume", action="store_true", help="continue the newest interrupted run of this config (init.resume=auto)"
    )
    p.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit (no run)")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("eval", help="evaluate a checkpoint or model on tasks")
    p.add_argument("config", help="experiment YAML (its eval section), or a run directory")
    p.add_argument("overrides", nargs="*", help=overrides_help)
    p.add_argument("--model", default=None, help="model or run directory to evaluate (default: from config)")
    p.add_argument("--out", default=None, help="results.json path (default: <run dir>/eval/results.json)")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("ablate", help="run a grid of experiments and summarise it")
    p.add_argument("ablation", help="ablation YAML (base experiment + grid)")
    p.add_argument("overrides", nargs="*", help="key=value overrides for every cell, before or after the flags")
    p.add_argument("--workers", type=int, default=1, help="cells run in parallel processes")
    p.set_defaults(func=_cmd_ablate)

    p = sub.add_parser("report", help="rebuild a sweep's summary and plots from its run directories")
    p.add_argument("sweep_dir", help="a directory made by `rlreason ablate` (<logging.dir>/<ablation name>)")
    p.set_defaults(func=_cmd_report)
    return parser, dict(sub.choices)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse a command line; a subcommand's flags and positionals may be intermixed."""
    parser, commands = _parsers()
    argv = list(argv)
    if argv and argv[0] in commands:
        args = commands[argv[0]].parse_intermixed_args(argv[1:])
        args.command = argv[0]
        return args
    return parser.parse_args(argv)  # --help, --version, or a usage error


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return int(args.func(args) or 0)
    except RLReasonError as exc:
        print(f"{getattr(exc, 'prefix', 'rlreason: error: ')}{exc}", file=sys.stderr)
        return int(getattr(exc, "exit_code", 2))
    except KeyboardInterrupt:
        print("rlreason: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
