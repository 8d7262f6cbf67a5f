"""Synchronous data-parallel training (the benchmark's GGS-style ``ddp`` baseline), with Spark's own RPC.

K trainers, one barrier task each, every one holding the whole graph and sampling mini-batches from its
shard of the training targets (every K-th target). After each backward pass the trainers exchange their
gradients with ``BarrierTaskContext.allGather`` (through the driver, no sockets of tma_spark's own) and
all apply the mean, so their models stay identical: one synchronous all-reduce per step. Each message also
carries a "stop" vote; all trainers see the same votes, so all stop after the same step.

Packing and averaging are pure functions, tested without Spark.
"""

from __future__ import annotations

import base64
from typing import Callable, List, Sequence, Tuple

import torch

__all__ = ["pack", "unpack_mean", "make_allreduce"]


def pack(grads: Sequence[torch.Tensor], stop: bool) -> str:
    """One trainer's gradients (float32, flattened) and its stop vote as an allGather message."""
    flat = torch.cat([g.detach().reshape(-1).float().cpu() for g in grads]) if grads else torch.zeros(0)
    return ("1" if stop else "0") + base64.b64encode(flat.numpy().tobytes()).decode("ascii")


def unpack_mean(messages: Sequence[str], shapes: Sequence[torch.Size]) -> Tuple[List[torch.Tensor], bool]:
    """The mean of every trainer's gradients, split back into ``shapes``, and whether any trainer voted stop."""
    total = None
    for message in messages:
        flat = torch.frombuffer(bytearray(base64.b64decode(message[1:])), dtype=torch.float32)
        total = flat.clone() if total is None else total.add_(flat)
    mean = total / len(messages)
    out, offset = [], 0
    for shape in shapes:
        n = int(torch.Size(shape).numel())
        out.append(mean[offset:offset + n].view(shape))
        offset += n
    if offset != mean.numel():
        raise ValueError(f"gradient messages hold {mean.numel()} values, the model has {offset}")
    return out, any(message[0] == "1" for message in messages)


def make_allreduce(ctx) -> Callable[[torch.nn.Module, bool], bool]:
    """``allreduce(model, stop_vote) -> stop``: replace every gradient by the trainers' mean (one allGather)."""

    def allreduce(model: torch.nn.Module, stop: bool) -> bool:
        params = list(model.parameters())
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        mean, stop_all = unpack_mean(ctx.allGather(pack(grads, stop)), [g.shape for g in grads])
        for p, g in zip(params, mean):
            p.grad = g.to(device=p.device, dtype=p.dtype)
        return stop_all

    return allreduce
