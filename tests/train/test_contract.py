"""The driver-trainer contract (pure torch, no Spark): model specs, per-trainer seeds, results, old run folders."""

import json
import logging
import pickle
from dataclasses import replace

import pytest
import torch

from tma_spark.errors import TmaSparkError
from tma_spark.train.contract import (LostTrainer, ModelSpec, Source, TrainerResult, TrainerSpec, from_bytes,
                                      non_finite, to_bytes, trainer_seed)
from tma_spark.train.executor import seed_trainer, train_for
from tma_spark.train.graphdata import GraphTensors
from tma_spark.train.models import GNN, MODELS
from tma_spark.train.objectives import build_objective
from tma_spark.train.run_dir import MODEL_FILE, derive_model_spec, read_model_spec

CPU = torch.device("cpu")


def _graph(n=40, m=120, dim=6, classes=3, seed=0) -> GraphTensors:
    g = torch.Generator().manual_seed(seed)
    ei = torch.randint(0, n, (2, m), generator=g)
    ei = torch.cat([ei, ei.flip(0)], 1)
    split = torch.zeros(n, dtype=torch.int8)  # every node trains
    return GraphTensors(torch.arange(n), torch.randn(n, dim, generator=g), torch.randint(0, classes, (n,),
                                                                                       generator=g), split, ei)


def _spec(**changes) -> TrainerSpec:
    spec = TrainerSpec(model=ModelSpec("sage", 6, 16, 3, layers=2, dropout=0.5), source=Source("lake", "/l", "delta"),
                       sampler="full", seed=7)
    return replace(spec, **changes)


# ---------------------------------------------------------------- ModelSpec


@pytest.mark.parametrize("kind", MODELS)
def test_model_spec_round_trips_through_json_and_builds_the_model(kind):
    spec = ModelSpec(kind, in_dim=5, hidden=8, out_dim=3, layers=3, dropout=0.25)
    again = ModelSpec.from_json(json.loads(json.dumps(spec.to_json())))
    assert again == spec and spec.dims == [5, 8, 8, 3]
    model = again.build(seed=1)
    assert isinstance(model, GNN) and model.dropout == 0.25 and len(model.convs) == 3
    assert model(torch.randn(4, 5), torch.tensor([[0, 1], [1, 2]])).shape == (4, 3)


@pytest.mark.parametrize("bad,fragment", [
    ({"kind": "sage", "in_dim": 5}, "missing hidden, out_dim, layers, dropout"),
    ({"kind": "gin", "in_dim": 5, "hidden": 8, "out_dim": 3, "layers": 2, "dropout": 0.5}, "kind 'gin'"),
    ({"kind": "sage", "in_dim": "x", "hidden": 8, "out_dim": 3, "layers": 2, "dropout": 0.5}, "wrong type"),
    ({"kind": "sage", "in_dim": 0, "hidden": 8, "out_dim": 3, "layers": 2, "dropout": 0.5}, "at least 1"),
    ({"format": "other/9", "kind": "sage"}, "format 'other/9'"),
    ([1, 2], "expected a JSON object"),
])
def test_model_spec_from_json_says_what_is_wrong(bad, fragment):
    with pytest.raises(ValueError, match=fragment):
        ModelSpec.from_json(bad)


def test_build_seeds_the_initial_weights_and_leaves_the_global_random_state_alone():
    spec = ModelSpec("gat", 5, 8, 3)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a, b, c = spec.build(seed=4).state_dict(), spec.build(seed=4).state_dict(), spec.build(seed=5).state_dict()
    assert torch.equal(torch.get_rng_state(), before)  # building (e.g. to load weights) does not reseed
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    torch.manual_seed(4)  # the same initial weights as runs trained before the contract existed
    old = GNN("gat", 5, 8, 3).state_dict()
    assert all(torch.equal(a[k], old[k]) for k in a)


# ---------------------------------------------------------------- seeds


def test_trainer_seed_is_a_pure_function_distinct_per_part_and_round():
    grid = [(s, p, r) for s in (0, 1) for p in range(16) for r in range(50)]
    seeds = [trainer_seed(*key) for key in grid]
    assert seeds == [trainer_seed(*key) for key in grid]  # reproducible (a retried round replays its stream)
    assert len(set(seeds)) == len(grid)  # no trainer or round replays another's
    assert all(0 <= s < 2**63 for s in seeds)
    torch.manual_seed(max(seeds))  # a valid torch seed
    assert _spec().seed_for(3, 2) == trainer_seed(7, 3, 2)


def _dropout_mask(spec: TrainerSpec, state: dict, part: int, round_index: int) -> torch.Tensor:
    """The dropout mask trainer ``part`` draws in its first step of ``round_index``, seeded and built as
    :func:`~tma_spark.train.executor.train_for` does (seed, then build the model and load the global weights)."""
    objective = build_objective(_graph(), spec, CPU)
    seed_trainer(objective, spec.seed_for(part, round_index))
    model = spec.model.build()
    model.load_state_dict(state)
    seen = []
    model.convs[1].register_forward_pre_hook(lambda module, args: seen.append(args[0] == 0))  # dropped = exact 0
    model.train()
    objective.loss(model)
    return seen[0]


def test_two_trainers_draw_different_dropout_masks_from_the_same_initial_weights():
    spec = _spec()
    state = spec.model.build(seed=spec.seed).state_dict()  # built once on the driver, shipped to every trainer
    assert all(torch.equal(v, spec.model.build(seed=spec.seed).state_dict()[k]) for k, v in state.items())
    m0, m1 = _dropout_mask(spec, state, 0, 1), _dropout_mask(spec, state, 1, 1)
    assert 0.3 < m0.float().mean() < 0.7  # dropout 0.5 is active
    assert not torch.equal(m0, m1)  # parts 0 and 1 of the same round
    assert not torch.equal(m0, _dropout_mask(spec, state, 0, 2))  # the next round
    assert torch.equal(m0, _dropout_mask(spec, state, 0, 1))  # the same (seed, part, round)
    assert not torch.equal(m0, _dropout_mask(replace(spec, seed=8), state, 0, 1))  # another run seed


def test_train_for_differs_between_trainers_and_replays_for_the_same_seed():
    spec = _spec()
    graph, state = _graph(), spec.model.build(seed=spec.seed).state_dict()
    objective = build_objective(graph, spec, CPU)

    def one_step(part):  # seconds=0: exactly one step
        return train_for(objective, spec, state, None, 0.0, CPU, seed=spec.seed_for(part, 1))

    a, b, again = one_step(0), one_step(1), one_step(0)
    assert a.steps == b.steps == 1
    assert all(torch.equal(a.state[k], again.state[k]) for k in a.state) and a.loss == again.loss
    assert not all(torch.equal(a.state[k], b.state[k]) for k in a.state)


# ---------------------------------------------------------------- results and specs on the wire


def test_trainer_result_carries_weights_as_safe_bytes_and_lost_trainers_are_marked():
    state = ModelSpec("mlp", 4, 8, 2).build().state_dict()
    result = TrainerResult(part=1, state=to_bytes(state), opt=None, steps=3, loss=0.5, train_nodes=10, edges=20,
                           sampler="full", load_seconds=0.1, task_seconds=1.0, device="cpu", gpus=("0",), pid=1,
                           code="/x")
    assert not result.lost and LostTrainer(2, "killed").lost
    got = result.state_dict()
    assert all(torch.equal(got[k], state[k]) for k in state)
    assert result.state_dict() is got  # decoded once: the divergence check and the average share it
    shipped = pickle.dumps(result)
    assert len(shipped) < len(result.state) + 1000  # without the decoded copy
    assert pickle.loads(shipped) == result  # Spark ships results and specs pickled
    assert pickle.loads(pickle.dumps(_spec())) == _spec()
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):  # no arbitrary objects
        from_bytes(pickle.dumps(LostTrainer(0, "x"), protocol=2))


def test_a_result_with_non_finite_loss_or_weights_has_diverged():
    """The driver's check before averaging: one isfinite pass over the returned weights, plus the mean loss."""
    state = ModelSpec("mlp", 4, 8, 2).build().state_dict()

    def result(loss=0.5, **bad):
        return TrainerResult(part=0, state=to_bytes({**state, **bad}), opt=None, steps=3, loss=loss, train_nodes=10,
                             edges=20, sampler="full", load_seconds=0.1, task_seconds=1.0, device="cpu", gpus=(),
                             pid=1, code="/x")

    assert result().divergence() is None and non_finite(state) == []
    name = next(iter(state))
    nan_weight = state[name].clone()
    nan_weight.view(-1)[0] = float("nan")
    assert non_finite({**state, name: nan_weight}) == [name]
    assert result(**{name: nan_weight}).divergence() == f"diverged: non-finite weights {name}"
    assert result(loss=float("inf")).divergence() == "diverged: non-finite loss inf"
    everything = {k: torch.full_like(v, float("-inf")) for k, v in state.items()}
    why = result(loss=float("nan"), **everything).divergence()
    assert why.startswith("diverged: non-finite loss nan and weights ") and f"{len(state) - 3} more" in why


def test_the_driver_warns_of_a_trainer_that_diverged_in_the_warm_up(caplog):
    from tma_spark.train.driver import _check_warmup

    state = ModelSpec("mlp", 4, 8, 2).build().state_dict()
    fine = TrainerResult(part=0, state=to_bytes(state), opt=None, steps=1, loss=0.5, train_nodes=10, edges=20,
                         sampler="full", load_seconds=0.1, task_seconds=1.0, device="cpu", gpus=(), pid=1, code="/x")
    blown = replace(fine, part=1, loss=float("nan"))
    with caplog.at_level(logging.WARNING, logger="tma_spark.train.driver"):
        _check_warmup([fine, blown, LostTrainer(2, "killed")])
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and "warm-up: part 1 diverged" in warned[0] and "--lr" in warned[0]


def test_ddp_shards_the_targets_and_other_modes_do_not():
    assert _spec(mode="ddp", trainers=3).shard(2) == (2, 3)
    assert _spec(mode="tma", trainers=3).shard(2) is None


# ---------------------------------------------------------------- run folders


def _old_run(tmp_path, kind="sage", layers=2, out_dim=3):
    state = ModelSpec(kind, 6, 8, out_dim, layers=layers).build().state_dict()
    cfg = {"model": kind, "hidden": 8, "layers": layers, "task": "node", "dropout": 0.1}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    return cfg, state


@pytest.mark.parametrize("kind", MODELS)
def test_runs_without_model_json_derive_the_spec_from_config_and_weights(tmp_path, kind):
    cfg, state = _old_run(tmp_path, kind)
    spec = read_model_spec(str(tmp_path), cfg, state, "best.pt")
    assert spec == ModelSpec(kind, 6, 8, 3, layers=2, dropout=0.1)
    spec.build().load_state_dict(state)


def test_model_json_wins_and_bad_specs_are_refused(tmp_path):
    cfg, state = _old_run(tmp_path)
    written = ModelSpec("sage", 6, 8, 3, layers=2, dropout=0.3)
    (tmp_path / MODEL_FILE).write_text(json.dumps(written.to_json()))
    assert read_model_spec(str(tmp_path), cfg, state, "best.pt") == written
    (tmp_path / MODEL_FILE).write_text("{not json")
    with pytest.raises(TmaSparkError, match=f"{MODEL_FILE} is not a tma_spark model spec .* Fix:"):
        read_model_spec(str(tmp_path), cfg, state, "best.pt")
    with pytest.raises(TmaSparkError, match="best.pt is not a tma_spark model state dict"):
        read_model_spec(str(tmp_path), cfg, {"weights": torch.zeros(3)}, "best.pt")
    with pytest.raises(TmaSparkError, match=r"Cannot tell the model of checkpoint best.pt: .*Fix: write model.json"):
        derive_model_spec({"model": "sage"}, state, "best.pt")
