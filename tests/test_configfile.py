"""Config files: pure parsing and validation (no Spark), then the CLI and the whole pipeline through them."""

import json
from pathlib import Path

import pytest
import yaml

from tma_spark.cli import _parse
from tma_spark.commands import SETTINGS
from tma_spark.configfile import apply_overrides, command_defaults, load_config
from tma_spark.errors import ConfigError
from tma_spark.tracking import tracking_settings

REPO = Path(__file__).resolve().parents[1]


def _write(tmp_path, doc, name="c.yaml"):
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return str(path)


def test_file_values_are_defaults_and_flags_override(tmp_path):
    cfg = _write(tmp_path, {"lake": "L", "partitions": "P", "run": "R", "train": {"round_seconds": 5, "hidden": 64,
                                                                                   "fanouts": [10, 5]}})
    args = _parse(["train", "--config", cfg, "--hidden", "32"])
    assert (args.lake, args.partitions, args.out) == ("L", "P", "R")
    assert (args.round_seconds, args.hidden, args.fanouts) == (5.0, 32, "10,5")
    assert args.time_limit == 300.0  # untouched keys keep the flag's default
    args = _parse(["partition", "--config", cfg, "-k", "3"])
    assert (args.lake, args.out, args.parts) == ("L", "P", 3)


def test_the_quickstart_config_is_valid_for_every_step():
    doc = load_config(str(REPO / "examples" / "quickstart.yaml"))
    for step in ("ingest", "partition", "train", "infer"):
        assert command_defaults(doc, step, SETTINGS[step])


@pytest.mark.parametrize("doc,fragment", [
    ({"train": {"hiden": 64}}, "train.hiden is not a train setting (did you mean 'hidden'?)"),
    ({"train": {"hidden": "big"}}, "train.hidden = 'big' must be a whole number (--hidden)"),
    ({"train": {"hidden": 6.5}}, "must be a whole number"),
    ({"train": {"round_seconds": True}}, "must be a number"),
    ({"train": {"overwrite": "yes"}}, "must be true or false (--overwrite)"),
    ({"ingest": {"dataset": "imagenet"}}, "ingest.dataset = 'imagenet' is not one of"),
    ({"partition": {"format": "csv"}}, "is not one of delta, parquet (--format)"),
    ({"lakes": "x"}, "unknown top-level key 'lakes' (did you mean 'lake'?)"),
    ({"train": [1, 2]}, "train must be a mapping"),
    ("- just\n- a list\n", "must be a mapping of keys to values"),
    ("train: {hidden: [unclosed\n", "is not valid YAML"),
])
def test_bad_config_files_name_the_key_and_the_allowed_values(tmp_path, doc, fragment):
    cfg = _write(tmp_path, doc)
    with pytest.raises(ConfigError) as info:
        _parse(["train", "--config", cfg, "--lake", "L", "--out", "R", "--partitions", "P"])
    assert fragment in str(info.value)


def test_missing_file_and_missing_required_key(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        _parse(["train", "--config", str(tmp_path / "nope.yaml")])
    cfg = _write(tmp_path, {"lake": "L"})
    with pytest.raises(ConfigError, match="train needs train.out or top-level 'run'"):
        _parse(["train", "--config", cfg, "--partitions", "P"])


def test_overrides_are_yaml_typed_and_checked():
    doc = apply_overrides({"train": {"hidden": 64}}, ["train.time_limit=60", "lake=/data/l", "train.tolerate_failures=true"])
    assert doc["train"] == {"hidden": 64, "time_limit": 60, "tolerate_failures": True} and doc["lake"] == "/data/l"
    for bad, fragment in [("train.hidden", "KEY=VALUE"), ("trian.hidden=3", "did you mean 'train'"),
                          ("lake.path=x", "has no sub-keys")]:
        with pytest.raises(ConfigError, match=fragment):
            apply_overrides({}, [bad])


def test_tracking_settings():
    assert tracking_settings(None, None) is None
    assert tracking_settings(None, False) is None
    assert tracking_settings(None, True) == {}
    assert tracking_settings("default", None) == {}
    assert tracking_settings("http://mlflow:5000", {"experiment": "e"}) == {"experiment": "e",
                                                                             "tracking_uri": "http://mlflow:5000"}
    assert tracking_settings(None, {"enabled": False, "experiment": "e"}) is None
    with pytest.raises(ConfigError, match="mlflow.uri is not an MLflow setting"):
        tracking_settings(None, {"uri": "x"})


BILLION_LAUGHS = """\
train:
  a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
  c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
  d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
  e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
  f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
  g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
  h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
  i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


@pytest.mark.parametrize("text,where", [(BILLION_LAUGHS, "*a, line 3"),
                                        ("lake: &l /data/lake\nrun: *l\n", "*l, line 2")])
def test_yaml_aliases_are_refused_naming_the_file(tmp_path, text, where):
    cfg = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    assert cfg in str(info.value) and f"YAML alias ({where})" in str(info.value) and "Fix:" in str(info.value)
    with pytest.raises(ConfigError, match="alias"):
        apply_overrides({}, ["lake=*l"])


def test_yaml_booleans_on_and_off_are_the_words_for_on_off_choices(tmp_path):
    from tma_spark.partition import PartitionConfig

    for word in ("on", "off"):
        doc = load_config(_write(tmp_path, f"partition: {{full_stats: {word}}}\n"))
        assert command_defaults(doc, "partition", PartitionConfig) == {"full_stats": word}
        assert command_defaults(apply_overrides({}, [f"partition.full_stats={word}"]), "partition",
                                PartitionConfig) == {"full_stats": word}
    doc = load_config(_write(tmp_path, "partition: {format: true}\n"))  # no on/off choices: still refused
    with pytest.raises(ConfigError, match="'true' is not one of delta, parquet"):
        command_defaults(doc, "partition", PartitionConfig)


@pytest.mark.spark
def test_bad_config_fails_before_spark_with_exit_2(cli, tmp_path):
    cfg = _write(tmp_path, {"lake": str(tmp_path / "L"), "partitions": "P", "run": "R", "predictions": "Q",
                            "ingest": {"dataset": "cora"}, "infer": {"checkpoint": "newest"}})
    code, _, err = cli("run", "--config", cfg)
    assert code == 2 and "--checkpoint" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]  # nothing ran


@pytest.mark.spark
def test_run_pipeline_end_to_end_with_mlflow(cli, tmp_path, monkeypatch):
    """`tma-spark run` on Cora: ingest, partition, train, infer, with the run tracked in a local MLflow store;
    a second run resuming the training for one more round reuses the lake and the partitions and continues the
    same MLflow run (RUN/tracking.json)."""
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)
    doc = yaml.safe_load((REPO / "examples" / "quickstart.yaml").read_text())
    doc["train"].update(round_seconds=1.5, time_limit=60, max_rounds=2, hidden=16)
    doc["mlflow"] = {"experiment": "tests"}
    cfg = _write(tmp_path, doc)
    code, out, err = cli("run", "--config", cfg, "--set", "partition.parts=2")
    assert code == 0, err[-3000:]
    result = json.loads(out.strip().splitlines()[-1])
    assert result["train"]["rounds"] == 2 and result["train"]["parts"] == 2
    assert result["infer"]["test"] > 0.5
    run = tmp_path / "demo_run"
    assert {"best.pt", "summary.json", "eval.json", "pipeline.json"} <= {p.name for p in run.iterdir()}
    saved = json.loads((run / "pipeline.json").read_text())
    assert saved["partition"]["parts"] == 2 and saved["train"]["hidden"] == 16
    assert "[1/4] ingest" in err and "[4/4] infer" in err

    client = MlflowClient(tracking_uri=f"file:{tmp_path / 'mlruns'}")
    mlrun = client.get_run(result["mlflow_run_id"])
    assert mlrun.info.status == "FINISHED"
    assert mlrun.data.params["partition.parts"] == "2" and mlrun.data.params["train.hidden"] == "16"
    assert [m.step for m in client.get_metric_history(mlrun.info.run_id, "val")] == [1, 2]
    assert "partition_edge_retention" in mlrun.data.metrics and "infer_test" in mlrun.data.metrics
    artifacts = {f.path for folder in ("run", "partitions") for f in client.list_artifacts(mlrun.info.run_id, folder)}
    assert {"run/best.pt", "run/metrics.jsonl", "partitions/stats.json", "partitions/stats.png"} <= artifacts

    assert json.loads((run / "tracking.json").read_text())["run_id"] == mlrun.info.run_id

    code, out, err = cli("run", "--config", cfg, "--set", "partition.parts=2", "--set", "train.resume=true",
                         "--set", "train.max_rounds=3", "--set", "infer.overwrite=true")
    assert code == 0, err[-3000:]
    assert "using the existing lake" in err and "using the existing partitions" in err
    resumed = json.loads(out.strip().splitlines()[-1])
    assert resumed["mlflow_run_id"] == mlrun.info.run_id  # the resumed run continues the same MLflow run
    assert [m.step for m in client.get_metric_history(mlrun.info.run_id, "val")] == [1, 2, 3]
    assert client.get_run(mlrun.info.run_id).info.status == "FINISHED"
