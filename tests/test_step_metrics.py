"""Per-step scalars reduced over real gloo ranks: pooled ratios, keys some ranks lack, no stale values."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from rlreason.train.metrics import Ratio, reduce_metrics


def test_single_process_means_ratios_and_drops():
    out = reduce_metrics({"a": 2.0, "r": Ratio(1.0, 4.0), "empty": Ratio(0.0, 0.0), "nan": float("nan")})
    assert out == {"a": 2.0, "r": 0.25}  # a ratio with no samples and a non-finite scalar are not written


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        if rank == 0:  # 3 think answers, 2 right; a key only rank 0 has
            metrics = {"loss": 1.0, "acc_think": Ratio(2.0, 3.0), "only_rank0": 5.0}
        else:  # 1 think answer, right
            metrics = {"loss": 3.0, "acc_think": Ratio(1.0, 1.0)}
        torch.save(reduce_metrics(metrics, world_size=2), os.path.join(out_dir, f"{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_two_ranks_pool_ratios_and_tolerate_missing_keys(tmp_path):
    if not dist.is_available():
        pytest.skip("torch.distributed not available")
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = torch.load(tmp_path / "0.pt"), torch.load(tmp_path / "1.pt")
    assert r0 == r1  # every rank sees the same reduced values
    # loss: mean of 1 and 3; acc_think pooled 3 / 4 (not the mean of rates 0.667 and 1.0);
    # only_rank0: the mean over the ranks that reported it
    assert r0 == {"loss": 2.0, "acc_think": 0.75, "only_rank0": 5.0}
