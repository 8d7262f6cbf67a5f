"""One declaration per setting: flags, config-file keys and defaults all come from the config dataclasses.

Pure and fast: argparse, dataclasses and YAML documents; no Spark.
"""

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Tuple

import pytest

from tma_spark.bench import BenchConfig
from tma_spark.cli import _parse, build_parser
from tma_spark.commands import SETTINGS, build_config, config_from_file
from tma_spark.configfile import command_defaults
from tma_spark.errors import ConfigError
from tma_spark.infer import InferConfig
from tma_spark.ingest import IngestConfig
from tma_spark.ingest.synthetic import SyntheticConfig
from tma_spark.partition import PartitionConfig
from tma_spark.settings import count, fractions, names, setting, specs, whole_numbers
from tma_spark.train import TrainConfig

PACKAGE = Path(__file__).resolve().parents[1] / "tma_spark"
REQUIRED = {"ingest": ["--lake", "L"], "partition": ["--lake", "L", "--out", "P"],
            "train": ["--lake", "L", "--out", "R"],
            "infer": ["--lake", "L", "--run", "R", "--out", "Q"], "bench": ["--lake", "L", "--out", "B"],
            "info": ["--lake", "L"]}


def _args(*argv) -> dict:
    return vars(build_parser().parse_args([str(a) for a in argv]))


@pytest.mark.parametrize("command", sorted(SETTINGS))
def test_every_field_default_is_the_generated_flag_default(command):
    args = _args(command, *REQUIRED[command])
    for spec in specs(SETTINGS[command]):
        value = args[spec.name]
        if spec.setting.parse is not None and isinstance(value, str):
            value = spec.setting.parse(value, spec.flag)
        assert spec.required or value == spec.default, (spec.name, value, spec.default)


def test_commands_with_only_their_required_flags_get_the_library_defaults():
    assert build_config("train", _args("train", *REQUIRED["train"], "--partitions", "P")) == TrainConfig(
        lake="L", out="R", partitions="P")
    assert build_config("partition", _args("partition", *REQUIRED["partition"])) == PartitionConfig(lake="L", out="P")
    assert build_config("infer", _args("infer", *REQUIRED["infer"])) == InferConfig(lake="L", run="R", out="Q")
    assert build_config("bench", _args("bench", *REQUIRED["bench"])) == BenchConfig(lake="L", out="B")
    # ingest's flags map onto IngestConfig and SyntheticConfig: their defaults too
    assert build_config("ingest", _args("ingest", "--lake", "L", "--dataset", "cora")) == IngestConfig(
        lake="L", dataset="cora")
    synthetic = build_config("ingest", _args("ingest", "--lake", "L", "--synthetic", "--nodes", "1e3", "--edges",
                                             "20_000"))
    assert synthetic.synthetic == SyntheticConfig(nodes=1000, edges=20000)
    assert (synthetic.nodes, synthetic.edges, synthetic.feature_dim) == (None, None, IngestConfig.feature_dim)


def test_train_model_names_are_the_models_train_builds():
    from tma_spark.train.config import MODELS
    from tma_spark.train.models import GNN

    for kind in MODELS:
        GNN(kind, in_dim=4, hidden=8, out_dim=3)


def test_auto_optimizer_state_is_resident_unless_trainers_move():
    """Barrier rounds keep parts (and so resident Adam states) where they are; --tolerate-failures runs each
    trainer as its own job wherever Spark puts it, so its Adam state must travel."""
    assert TrainConfig(lake="L", out="R").trainer_optimizer_state == "resident"
    assert TrainConfig(lake="L", out="R", tolerate_failures=True).trainer_optimizer_state == "shipped"
    pinned = TrainConfig(lake="L", out="R", tolerate_failures=True, optimizer_state="resident")
    assert pinned.trainer_optimizer_state == "resident"
    assert TrainConfig(lake="L", out="R", optimizer_state="shipped").trainer_optimizer_state == "shipped"


@pytest.mark.parametrize("command", sorted(SETTINGS))
def test_help_lists_every_flag_with_its_help(command, capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for spec in specs(SETTINGS[command]):
        assert spec.setting.help and all(f in out for f in spec.flags), spec.name


@pytest.mark.parametrize("command,section,fragment", [
    ("train", {"hiden": 64}, "train.hiden is not a train setting (did you mean 'hidden'?). Allowed: "),
    ("ingest", {"datset": "cora"}, "ingest.datset is not a ingest setting (did you mean 'dataset'?)"),
    ("train", {"master": "local"}, "train.master is not a train setting"),
    ("train", {"mlflow": True}, "train.mlflow is not a train setting"),
    ("partition", {"metis_max_edges": 10}, "partition.metis_max_edges is not a partition setting"),
    ("train", {"hidden": "big"}, "c.yaml: train.hidden = 'big' must be a whole number (--hidden)"),
    ("train", {"hidden": 6.5}, "must be a whole number (--hidden)"),
    ("train", {"round_seconds": "fast"}, "train.round_seconds = 'fast' must be a number (--round-seconds)"),
    ("train", {"resume": 1}, "train.resume = 1 must be true or false (--resume)"),
    ("train", {"fanouts": {"a": 1}}, "must be a single value, not a mapping (--fanouts)"),
    ("train", {"mode": "gossip"}, "train.mode = 'gossip' is not one of tma, central, psgd-pa, llcg, ddp (--mode)"),
    ("partition", {"strategy": "hash"}, "partition.strategy = 'hash' is not one of random, super, metis"),
    ("infer", {"checkpoint": "newest"}, "infer.checkpoint = 'newest' is not one of best, last (--checkpoint)"),
    ("ingest", {"format": "orc"}, "ingest.format is not a ingest setting"),  # the key of --format is input_format
    ("ingest", {"input_format": "orc"}, "is not one of delta, parquet, csv, table (--format)"),
    ("bench", {"super_method": "louvain"}, "bench.super_method = 'louvain' is not one of lpa, metis"),
])
def test_bad_config_sections_name_the_file_key_and_what_is_allowed(command, section, fragment):
    doc = {"_path": "c.yaml", command: section}
    with pytest.raises(ConfigError) as info:
        command_defaults(doc, command, SETTINGS[command])
    assert fragment in str(info.value)


@pytest.mark.parametrize("command,section,flags", [
    ("train", {"round_seconds": 5, "hidden": 64, "fanouts": [10, 5], "mode": "central", "inject_failures":
               "trainer:0:2", "tolerate_failures": True, "max_rounds": 3},
     ["--partitions", "P", "-T", "5", "--hidden", "64", "--fanouts", "10,5", "--mode", "central", "--inject-failure", "trainer:0:2",
      "--tolerate-failures", "--max-rounds", "3"]),
    ("partition", {"parts": 3, "strategy": "super", "super_nodes": 64, "full_stats": "off"},
     ["-k", "3", "--strategy", "super", "-m", "64", "--full-stats", "off"]),
    ("infer", {"checkpoint": "last", "eval_negatives": 10, "overwrite": True},
     ["--checkpoint", "last", "--eval-negatives", "10", "--overwrite"]),
    ("bench", {"methods": ["central", "random"], "budget": 30, "seeds": 1},
     ["--methods", "central,random", "--budget", "30", "--seeds", "1"]),
    ("ingest", {"synthetic": True, "nodes": 1000, "edges": "2e4", "split": [0.5, 0.25, 0.25], "seed": 3,
                "feature_dim": 8, "input_format": "parquet"},
     ["--synthetic", "--nodes", "1000", "--edges", "2e4", "--split", "0.5,0.25,0.25", "--seed", "3",
      "--feature-dim", "8", "--format", "parquet"]),
])
def test_a_config_section_and_the_same_flags_give_equal_configs(command, section, flags):
    doc = {"lake": "L", "partitions": "P", "run": "R", "predictions": "Q", command: section}
    if command == "bench":  # bench has no top-level path for its folder
        doc["bench"] = {**section, "out": "B"}
    assert config_from_file(doc, command) == build_config(command, _args(command, *REQUIRED[command], *flags))


def test_config_file_values_are_flag_defaults_and_the_master_key_fills_master(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("lake: L\npartitions: P\nrun: R\nmaster: local[3]\ntrain: {hidden: 64, fanouts: [10, 5]}\n")
    args = _parse(["train", "--config", str(cfg), "--hidden", "32"])
    assert args.master == "local[3]" and build_config("train", vars(args)) == TrainConfig(
        lake="L", partitions="P", out="R", hidden=32, fanouts=(10, 5))
    assert _parse(["train", "--config", str(cfg), "--master", "yarn"]).master == "yarn"
    cfg.write_text("lake: L\n")
    with pytest.raises(ConfigError, match=r"partition needs partition.out or top-level 'partitions' \(or the flags "
                                          r"--out\)"):
        _parse(["partition", "--config", str(cfg)])
    assert _parse(["partition", "--config", str(cfg), "--out=P"]).out == "P"


def test_flags_are_defined_once():
    """Each command's flags are its settings' flags plus the invocation's; every hand-written add_argument
    names its flags once in the whole package, and nothing reads argparse internals."""
    common = {"-h", "--help", "--master", "-q", "--quiet", "-v", "--verbose", "--config"}
    for command, cls in SETTINGS.items():
        flags = [f for spec in specs(cls) for f in spec.flags]
        assert len(flags) == len(set(flags)) and not common & set(flags), command
    build_parser()  # argparse refuses a flag defined twice in one command
    literals = []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        assert "_actions" not in text and "_tma_subparsers" not in text and "argparse._" not in text, path.name
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument":
                literals += [a.value for a in node.args if isinstance(a, ast.Constant)]
    assert len(literals) == len(set(literals)), sorted(f for f in literals if literals.count(f) > 1)


def test_nothing_in_the_package_imports_the_command_line():
    """The command line imports the library, never the other way round (no import cycle through cli)."""
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                module = "." * node.level + (node.module or "")
                imported = [module + "." + a.name for a in node.names] if not node.module else [module]
            elif isinstance(node, ast.Import):
                imported = [a.name for a in node.names]
            else:
                continue
            assert not any(m.split(".")[-1] == "cli" for m in imported), (path.name, imported)


def test_value_parsers_name_the_flag():
    assert count("1e6", "--nodes") == 1_000_000 and count("10_000", "--edges") == 10_000
    with pytest.raises(ConfigError, match="--nodes '1.5' must be a whole number"):
        count("1.5", "--nodes")
    assert fractions("0.6,0.2,0.2", "--split") == (0.6, 0.2, 0.2)
    with pytest.raises(ConfigError, match="--edge-split '0.5,0.5' must have three fractions"):
        fractions("0.5,0.5", "--edge-split")
    assert whole_numbers("25,-1", "--fanouts") == (25, -1) and whole_numbers("", "--fanouts") is None
    with pytest.raises(ConfigError, match="--fanouts 'a,b' must be comma-separated whole numbers"):
        whole_numbers("a,b", "--fanouts")
    assert names("central, random", "--methods") == ("central", "random")


def test_a_tuple_setting_must_declare_how_to_parse_it():
    @dataclass
    class Bad:
        sizes: Tuple[int, ...] = setting((1,), help="sizes")

    with pytest.raises(TypeError, match="Bad.sizes: .* needs parse="):
        specs(Bad)
