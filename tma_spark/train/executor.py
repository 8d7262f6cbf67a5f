"""Trainer task code: runs inside a barrier-mode Spark task, never touches the SparkSession.

A task trains its part's local model for a fixed wall-clock time, starting from
the global weights, and returns its weights, optimizer state, step count and
mean loss. The part's graph is loaded once per Python worker process and kept
in :data:`_GRAPHS` for later rounds; optimizer state is shipped with the task
(it is small next to a round, and it survives a worker being replaced).
"""

from __future__ import annotations

import io
import logging
import os
import time
from typing import Dict, Optional, Tuple

import torch

from .graphdata import GraphTensors, build_graph, read_table
from .models import build_model

__all__ = ["to_bytes", "from_bytes", "load_graph", "train_for", "pick_device", "run_trainer_task"]

log = logging.getLogger(__name__)

_GRAPHS: Dict[Tuple[str, int], GraphTensors] = {}
NODE_COLUMNS = ["id", "features", "label", "split"]


def to_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def from_bytes(data: bytes):
    """Load tensors/state dicts saved by :func:`to_bytes`; never unpickles arbitrary objects."""
    return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")


def load_graph(source: dict, part: int) -> GraphTensors:
    """The graph of ``part`` (or the whole lake when ``source["kind"] == "lake"``), cached per process."""
    key = (source["path"], part)
    if key not in _GRAPHS:
        where = {"part": part} if source["kind"] == "parts" else None
        nodes = read_table(f"{source['path']}/nodes", source["format"], NODE_COLUMNS, where)
        edges = read_table(f"{source['path']}/edges", source["format"], ["src", "dst"], where)
        _GRAPHS.clear()  # a worker keeps one part: tasks may move between workers across rounds
        _GRAPHS[key] = build_graph(nodes, edges)
    return _GRAPHS[key]


def pick_device(gpu_addresses: Optional[list]) -> torch.device:
    """The GPU Spark assigned to this task when there is one, else the CPU."""
    if gpu_addresses and torch.cuda.is_available():
        return torch.device(f"cuda:{int(gpu_addresses[0])}")
    return torch.device("cpu")


def train_for(graph: GraphTensors, spec: dict, state: dict, opt_state: Optional[dict], seconds: float,
              device: torch.device, seed: int) -> dict:
    """Full-batch training on ``graph`` for ``seconds`` of wall-clock time (at least one step)."""
    torch.manual_seed(seed)
    model = build_model(spec["model"], spec["in_dim"], spec["hidden"], spec["out_dim"], spec["layers"],
                        spec["dropout"]).to(device)
    model.load_state_dict(state)
    opt = torch.optim.Adam(model.parameters(), lr=spec["lr"])
    if opt_state is not None:
        opt.load_state_dict(opt_state)
    x, ei = graph.x.to(device), graph.edge_index.to(device)
    mask = graph.mask("train").to(device)
    y = graph.y.to(device)
    use_amp = device.type == "cuda" and spec.get("amp", True)
    steps, loss_sum = 0, 0.0
    model.train()
    begin = time.monotonic()
    deadline = begin + seconds
    # Stop when the next step would end past the deadline (at least one step): rounds end on time
    # instead of overshooting by up to a step, and the stage waits less for its slowest trainer.
    while steps == 0 or time.monotonic() + (time.monotonic() - begin) / steps <= deadline:
        if not bool(mask.any()):
            break
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
            out = model(x, ei)
            loss = torch.nn.functional.cross_entropy(out[mask].float(), y[mask])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        steps += 1
        loss_sum += float(loss.detach())
    return {"state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "opt": _cpu(opt.state_dict()), "steps": steps, "loss": loss_sum / max(steps, 1),
            "train_nodes": int(mask.sum()), "edges": int(graph.edge_index.shape[1] // 2)}


def _cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_cpu(v) for v in obj]
    return obj


def run_trainer_task(part: int, spec: dict, state_bytes: bytes, opt_bytes: Optional[bytes], seconds: float,
                     round_index: int, gpu_addresses: Optional[list], threads: int) -> dict:
    """Everything one trainer does in one round; returns plain bytes and numbers for the driver."""
    started = time.monotonic()
    torch.set_num_threads(max(int(threads), 1))
    device = pick_device(gpu_addresses)
    graph = load_graph(spec["source"], part)
    loaded = time.monotonic()
    state = from_bytes(state_bytes)
    opt_state = from_bytes(opt_bytes) if opt_bytes else None
    out = train_for(graph, spec, state, opt_state, max(seconds - (loaded - started), 0.0), device,
                    seed=spec["seed"] * 100_003 + round_index * 101 + part)
    log.info("round %d part %d: %d steps on %s, loss %.4f", round_index, part, out["steps"], device, out["loss"])
    return {"part": part, "state": to_bytes(out["state"]), "opt": to_bytes(out["opt"]), "steps": out["steps"],
            "loss": out["loss"], "train_nodes": out["train_nodes"], "edges": out["edges"],
            "load_seconds": round(loaded - started, 3), "task_seconds": round(time.monotonic() - started, 3),
            "device": str(device), "pid": os.getpid()}
