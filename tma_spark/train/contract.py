"""The contract between the training driver and its trainer tasks: what a trainer gets, what it returns.

Frozen dataclasses of plain values, in the spirit of PyG's ``SamplerOutput``:

* :class:`ModelSpec`: the model's shape (kind and sizes). The driver writes it into every run folder as
  ``model.json``; inference, benchmarks and tests build the model from it instead of guessing sizes from
  parameter names.
* :class:`TrainerSpec`: everything a trainer needs for a round (model, data source, optimizer, sampler,
  seeds, fault injection). It travels inside the Spark task closure (pickled by Spark itself).
* :class:`TrainerResult` / :class:`LostTrainer`: one trainer's outcome of a round. Weights and optimizer
  states are ``torch.save`` bytes of tensors, read back with ``torch.load(weights_only=True)``
  (:func:`from_bytes`), so no pickle is ever read from disk.

This module is trainer-side: it imports torch and the models, never PySpark.
"""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import asdict, dataclass, field, fields
from functools import cached_property
from typing import ClassVar, Dict, List, Mapping, Optional, Tuple, Union

import torch

from .models import MODELS, GNN, build_model

__all__ = ["MODEL_FORMAT", "ModelSpec", "Source", "TrainerSpec", "TrainerResult", "LostTrainer", "RoundResult",
           "trainer_seed", "to_bytes", "from_bytes", "non_finite"]

#: Tag of ``model.json``; a future incompatible layout gets a new number.
MODEL_FORMAT = "tma_spark.model/1"


def to_bytes(obj) -> bytes:
    """Tensors or a (nested) dict of tensors as ``torch.save`` bytes."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def from_bytes(data: bytes):
    """Load what :func:`to_bytes` saved; ``weights_only``: never unpickles arbitrary objects."""
    return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")


def non_finite(tensors: Mapping[str, torch.Tensor]) -> List[str]:
    """Names of the tensors in a state dict that hold a NaN or an infinite value (one ``isfinite`` pass).

    A diverged trainer's weights are the usual source: one NaN in a model that is averaged makes the whole
    global model NaN.
    """
    return [name for name, t in tensors.items() if isinstance(t, torch.Tensor) and not bool(torch.isfinite(t).all())]


def trainer_seed(run_seed: int, part: int, round_index: int) -> int:
    """The seed of trainer ``part`` in round ``round_index`` (dropout masks and sampling).

    A hash, so that every (part, round) gets its own stream (no trainer replays another's masks, no round
    replays the previous one's) and a retried round replays exactly the same stream. 63 bits: a valid
    ``torch.manual_seed`` argument.
    """
    digest = hashlib.blake2b(f"{int(run_seed)}/{int(part)}/{int(round_index)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


@dataclass(frozen=True)
class ModelSpec:
    """The shape of a model: enough to rebuild it and load a state dict into it.

    Args:
        kind: ``sage``, ``gcn``, ``gat`` or ``mlp`` (:data:`~tma_spark.train.models.MODELS`).
        in_dim: input feature width.
        hidden: hidden width.
        out_dim: output width (classes for the node task, ``hidden`` for link embeddings).
        layers: number of layers (default 2).
        dropout: dropout probability between layers (training only; default 0.5).

    Example::

        spec = ModelSpec("sage", in_dim=1433, hidden=32, out_dim=7)
        model = spec.build(seed=0)          # the run's initial weights; the global RNG is left alone
        same = ModelSpec.from_json(spec.to_json())
    """

    kind: str
    in_dim: int
    hidden: int
    out_dim: int
    layers: int = 2
    dropout: float = 0.5

    @property
    def dims(self) -> List[int]:
        """Input and output width of every layer, in order: ``[in_dim, hidden, ..., out_dim]``."""
        return [self.in_dim] + [self.hidden] * (self.layers - 1) + [self.out_dim]

    def build(self, seed: int = 0) -> GNN:
        """A new model whose initial weights come from ``seed``, without touching the global random state."""
        return build_model(self.kind, self.in_dim, self.hidden, self.out_dim, self.layers, self.dropout, seed=seed)

    def to_json(self) -> dict:
        """A JSON-able dict (the content of ``model.json``)."""
        return {"format": MODEL_FORMAT, **asdict(self)}

    @classmethod
    def from_json(cls, data: Mapping) -> "ModelSpec":
        """The spec :meth:`to_json` wrote; ``ValueError`` saying what is missing or wrong."""
        if not isinstance(data, Mapping):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        if data.get("format", MODEL_FORMAT) != MODEL_FORMAT:
            raise ValueError(f"format {data.get('format')!r} is not {MODEL_FORMAT!r}")
        missing = [f.name for f in fields(cls) if f.name not in data]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}")
        try:
            spec = cls(kind=str(data["kind"]), in_dim=int(data["in_dim"]), hidden=int(data["hidden"]),
                       out_dim=int(data["out_dim"]), layers=int(data["layers"]), dropout=float(data["dropout"]))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"a field has the wrong type ({exc})") from None
        if spec.kind not in MODELS:
            raise ValueError(f"kind {spec.kind!r} is not one of {', '.join(MODELS)}")
        if min(spec.in_dim, spec.hidden, spec.out_dim, spec.layers) < 1:
            raise ValueError("in_dim, hidden, out_dim and layers must be at least 1")
        return spec


@dataclass(frozen=True)
class Source:
    """Where a trainer reads its graph.

    Args:
        kind: ``parts`` (a PARTS folder: the trainer reads its own part) or ``lake`` (the whole graph).
        path: the folder, qualified (executors do not share the driver's working directory).
        format: the table format (``delta`` or ``parquet``).
        version: when the data was written; a new version invalidates a worker's cached graph.
        storage: the driver's object-store settings (Hadoop ``fs.s3a.*`` keys, :func:`tma_spark.fs.settings`),
            so that the trainer reads ``s3a://`` paths with the credentials the user gave Spark. Never printed.
    """

    kind: str
    path: str
    format: str
    version: Union[str, float, int, None] = None
    storage: Tuple[Tuple[str, str], ...] = field(default=(), repr=False, compare=False)


@dataclass(frozen=True)
class TrainerSpec:
    """Everything a trainer task needs, the same for every trainer of a run (the part and round are
    arguments of the task).

    Args:
        model: the model to train (initial weights arrive as the round's global state).
        source: where the trainer reads its graph.
        task: ``node`` or ``link``.
        lr: Adam's learning rate.
        sampler, fanouts, batch_size: full-batch or neighbour-sampled steps
            (:mod:`tma_spark.train.objectives`).
        optimizer_state: ``shipped`` or ``resident`` (:mod:`tma_spark.train.executor`).
        mode: the training mode (``ddp`` shards the training targets over the trainers).
        trainers: number of trainers (K).
        seed: the run seed; each trainer's is :func:`trainer_seed` of it.
        run_id: tells one run's resident optimizer states from another's on a shared worker.
        faults: ``--inject-failure`` text, or None.
        attempt: the round's attempt (0 first); injected faults fire on the first only.
        amp: bf16 autocast on a GPU.
    """

    model: ModelSpec
    source: Source
    task: str = "node"
    lr: float = 0.005
    sampler: str = "auto"
    fanouts: Tuple[int, ...] = (25, 10)
    batch_size: int = 1024
    optimizer_state: str = "shipped"
    mode: str = "tma"
    trainers: int = 1
    seed: int = 0
    run_id: str = ""
    faults: Optional[str] = None
    attempt: int = 0
    amp: bool = True

    def shard(self, part: int) -> Optional[Tuple[int, int]]:
        """``(rank, world)`` of the training targets trainer ``part`` owns under ``ddp``, else None (all)."""
        return (part, self.trainers) if self.mode == "ddp" else None

    def seed_for(self, part: int, round_index: int) -> int:
        """Trainer ``part``'s seed in round ``round_index``."""
        return trainer_seed(self.seed, part, round_index)


@dataclass(frozen=True)
class TrainerResult:
    """What a trainer returns for a round.

    Args:
        part: the trainer's part.
        state: its weights after the round (:func:`to_bytes` of the state dict). On the way back under the
            ``files`` transport, a :class:`~tma_spark.train.exchange.Parcel` holding them, which the round code
            reads back into bytes as the result arrives (:mod:`tma_spark.train.exchange`).
        opt: its optimizer state (:func:`to_bytes`; a parcel on the way back, as ``state``), or None when it stays
            resident on the worker.
        steps, loss: optimizer steps taken and their mean loss.
        train_nodes, edges: the size of the part (for weighted averaging).
        sampler: ``full`` or ``neighbor``.
        load_seconds, task_seconds: loading time and the task's whole time.
        device, gpus: the torch device used and the GPU addresses Spark assigned.
        pid, code: the worker's process id and where it imported tma_spark from.
        opt_miss: a resident optimizer state was not on the worker (the task moved).
        targets: the training targets the trainer had (labelled training nodes, or training edges for link
            prediction); 0 (an empty part, or one without training labels): it trained 0 steps, and the driver
            leaves its unchanged weights out of the average. None: not reported (counts as trained).
        peak_rss_mb: the worker process's peak resident memory so far (MB), None when not reported.
        executor: the address (``host:port``) of the executor that ran a barrier trainer, which the next round
            places the part on (:mod:`tma_spark.train.placement`); None for independent tasks.
        part_loaded: whether the trainer read its part from storage this round (False: its worker held it).
    """

    lost: ClassVar[bool] = False
    part: int
    state: bytes
    opt: Optional[bytes]
    steps: int
    loss: float
    train_nodes: int
    edges: int
    sampler: str
    load_seconds: float
    task_seconds: float
    device: str
    gpus: Tuple[str, ...]
    pid: int
    code: str
    opt_miss: bool = False
    targets: Optional[int] = None
    peak_rss_mb: Optional[float] = None
    executor: Optional[str] = None
    part_loaded: Optional[bool] = None

    @property
    def trained(self) -> bool:
        """Whether the trainer had anything to train on (an idle trainer returns the weights it was sent)."""
        return self.targets != 0

    def state_dict(self) -> Dict[str, torch.Tensor]:
        """The trainer's weights as a state dict, decoded once: the divergence check and the average share it
        (each decode of a model on a loaded driver costs what the round's other driver work does)."""
        return self._weights

    @cached_property
    def _weights(self) -> Dict[str, torch.Tensor]:
        return from_bytes(self.state)

    def __getstate__(self) -> dict:  # pickled without the decoded weights: the bytes hold them
        return {k: v for k, v in self.__dict__.items() if k != "_weights"}

    def divergence(self) -> Optional[str]:
        """Why this result must not be averaged, or None: the trainer diverged (its mean loss or its weights
        are not finite).

        Checked on the driver, on the very bytes that would be averaged, so that no trainer code path (or an
        executor running older code) can slip a NaN into the global model. The optimizer state is not read:
        gradients are clipped (and NaN gradients give NaN weights), so Adam's state turns non-finite only
        together with the weights; a diverged trainer's state is dropped with its weights anyway.
        """
        bad = non_finite(self.state_dict())
        problems = [] if math.isfinite(self.loss) else [f"loss {self.loss}"]
        if bad:
            more = f", {len(bad) - 3} more" if len(bad) > 3 else ""
            problems.append(f"weights {', '.join(bad[:3])}{more}")
        return f"diverged: non-finite {' and '.join(problems)}" if problems else None


@dataclass(frozen=True)
class LostTrainer:
    """A trainer that did not finish the round (``tolerate_failures``), or whose result was discarded because it
    diverged (``diverged``): its part sits the round out."""

    lost: ClassVar[bool] = True
    part: int
    reason: str
    diverged: bool = False


RoundResult = Union[TrainerResult, LostTrainer]
