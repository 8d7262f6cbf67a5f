"""The Airflow example DAG (examples/airflow/tma_spark_pipeline.py) loads and is wired right.

Airflow and its Spark provider pin versions that clash with ours (pyspark, pandas, numpy,
pyarrow), so they live in their own virtual environment, ``.venv-airflow``, made by
``bash scripts/setup_airflow.sh`` (CI runs it). This test runs a small checker script with
that environment's Python in a subprocess (AIRFLOW_HOME in a temporary folder, no database,
scheduler or webserver), which loads the DAG file with Airflow's DagBag, renders the
``--config`` templates, and prints JSON that the assertions below check.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
AIRFLOW_PY = REPO / ".venv-airflow" / "bin" / "python"
DAG_FILE = REPO / "examples" / "airflow" / "tma_spark_pipeline.py"
STEPS = ["ingest", "partition", "train", "infer"]
GPU_KEYS = {
    "spark.executor.resource.gpu.amount",
    "spark.task.resource.gpu.amount",
    "spark.executor.resource.gpu.discoveryScript",
}

# Runs under .venv-airflow/bin/python; argv[1] = the DAG file. Prints one JSON object.
CHECKER = r'''
import importlib.util, json, sys, warnings
warnings.simplefilter("ignore")
dag_file = sys.argv[1]

try:  # Airflow 3.x
    from airflow.dag_processing.dagbag import DagBag
except ImportError:  # Airflow 2.x
    from airflow.models.dagbag import DagBag
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
import airflow

def render(task, value, dag, params, variables):
    ctx = {"params": params, "var": {"value": variables, "json": variables}}
    return task.render_template(value, ctx, jinja_env=dag.get_template_env())

def describe(dag):
    out = {"dag_id": dag.dag_id, "schedule": str(getattr(dag, "schedule", None)),
           "catchup": dag.catchup, "tasks": {}}
    for t in dag.tasks:
        out["tasks"][t.task_id] = {
            "class": type(t).__name__,
            "is_spark_submit": isinstance(t, SparkSubmitOperator),
            "application": t.application,
            "application_args": list(t.application_args or []),
            "conf": dict(t.conf or {}),
            "packages": t.packages,
            "jars": t.jars,
            "py_files": t.py_files,
            "conn_id": t._conn_id,
            "retries": t.retries,
            "upstream": sorted(t.upstream_task_ids),
            "downstream": sorted(t.downstream_task_ids),
            # --config value as rendered at run time: Variable/param unset, Variable set, both set
            "config_default": render(t, t.application_args, dag, {"tma_spark_config": None}, {}),
            "config_variable": render(t, t.application_args, dag, {"tma_spark_config": None},
                                      {"tma_spark_config": "/from/variable.yaml"}),
            "config_param": render(t, t.application_args, dag, {"tma_spark_config": "/from/param.yaml"},
                                   {"tma_spark_config": "/from/variable.yaml"}),
        }
        # The spark-submit command line the provider's hook would run (connection from the
        # AIRFLOW_CONN_SPARK_* env var, --config rendered with nothing set); nothing is run.
        raw_args = t.application_args
        try:
            t.application_args = out["tasks"][t.task_id]["config_default"]
            cmd = t._get_hook()._build_spark_submit_command(t.application)
        except Exception as exc:
            cmd = f"{type(exc).__name__}: {exc}"
        finally:
            t.application_args = raw_args
        out["tasks"][t.task_id]["spark_submit"] = cmd
    return out

bag = DagBag(dag_folder=dag_file)
result = {
    "airflow_version": airflow.__version__,
    "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
    "dag_ids": sorted(bag.dag_ids),
}
if "tma_spark_pipeline" in bag.dag_ids:
    dag = bag.dags["tma_spark_pipeline"]  # get_dag() would query the metadata DB
    result["dagbag"] = describe(dag)
    result["dagbag"]["params"] = sorted(dag.params.keys())
    try:  # the scheduler stores DAGs serialized: this must work too
        try:
            from airflow.serialization.serialized_objects import DagSerialization as _S
        except ImportError:
            from airflow.serialization.serialized_objects import SerializedDAG as _S
        _S.from_dict(_S.to_dict(dag))
        result["serialized"] = True
    except Exception as exc:  # reported, asserted in pytest
        result["serialized"] = f"{type(exc).__name__}: {exc}"

# The module's build_dag() with GPUs on and off (explicit arguments, not the environment).
try:
    spec = importlib.util.spec_from_file_location("tma_spark_pipeline_mod", dag_file)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    kw = dict(config="/cfg/p.yaml", jobs_dir="/jobs", wheel=None, conn_id="spark_test")
    result["gpu_on"] = describe(mod.build_dag("gpu_on", gpu=True, gpu_discovery_script="/gpu.sh", **kw))
    result["gpu_off"] = describe(
        mod.build_dag("gpu_off", gpu=False, step_args={"train": ["--time-limit", 600]}, **kw))
except Exception as exc:  # reported, asserted in pytest
    result["build_error"] = f"{type(exc).__name__}: {exc}"
print("RESULT " + json.dumps(result, default=str))
'''


def _run_checker(tmp_path: Path, **env_overrides: str) -> dict:
    home = tmp_path / "airflow_home"
    home.mkdir()
    script = tmp_path / "check_dag.py"
    script.write_text(CHECKER)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "TMA_SPARK_"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="True",
        AIRFLOW__CORE__DAGS_FOLDER=str(DAG_FILE.parent),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        AIRFLOW__LOGGING__BASE_LOG_FOLDER=str(home / "logs"),
        AIRFLOW_CONN_SPARK_DEFAULT='{"conn_type": "spark", "host": "local[2]"}',
        AIRFLOW_CONN_SPARK_TEST='{"conn_type": "spark", "host": "yarn"}',
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.pop("PYTHONPATH", None)
    env.update(env_overrides)
    proc = subprocess.run(
        [str(AIRFLOW_PY), str(script), str(DAG_FILE)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, (
        f"DAG checker failed (rc={proc.returncode})\nstdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
    )
    return json.loads(lines[-1][len("RESULT "):])


def test_airflow_dag_loads_and_is_wired(tmp_path):
    if not AIRFLOW_PY.exists():
        pytest.fail(
            f"{AIRFLOW_PY.relative_to(REPO)} is missing: run `bash scripts/setup_airflow.sh` "
            "(it makes the separate Airflow virtual environment this test needs).",
            pytrace=False,
        )
    # A deployment folder as TMA_SPARK_HOME: the package archive is found in dist/.
    deploy = tmp_path / "deploy"
    (deploy / "dist").mkdir(parents=True)
    wheel = deploy / "dist" / "tma_spark.zip"
    wheel.write_bytes(b"")
    cfg = str(tmp_path / "pipeline.yaml")
    r = _run_checker(tmp_path, TMA_SPARK_HOME=str(deploy), TMA_SPARK_CONFIG=cfg, TMA_SPARK_GPU="1")

    assert r["airflow_version"].startswith("3."), r["airflow_version"]
    assert r["import_errors"] == {}, r["import_errors"]
    assert r["dag_ids"] == ["tma_spark_pipeline"]
    assert "build_error" not in r, r["build_error"]
    assert r.get("serialized") is True, r.get("serialized")

    d = r["dagbag"]
    assert d["catchup"] is False
    assert d["params"] == ["tma_spark_config"]
    assert sorted(d["tasks"]) == sorted(STEPS)
    for i, step in enumerate(STEPS):
        t = d["tasks"][step]
        assert t["is_spark_submit"], t["class"]
        assert t["application"] == str(deploy / "jobs" / f"{step}.py")
        assert t["upstream"] == STEPS[i - 1:i]
        assert t["downstream"] == STEPS[i + 1:i + 2]
        assert t["conn_id"] == "spark_default"
        assert t["packages"] == "io.delta:delta-spark_4.2_2.13:4.4.0"
        assert t["jars"] is None
        assert t["py_files"] == str(wheel)
        assert t["retries"] >= 1
        args = t["application_args"]
        assert args[0] == "--config" and len(args) == 2, args
        # --config: env default < Airflow Variable < DAG-run param
        assert t["config_default"] == ["--config", cfg]
        assert t["config_variable"] == ["--config", "/from/variable.yaml"]
        assert t["config_param"] == ["--config", "/from/param.yaml"]
        # TMA_SPARK_GPU=1: GPU confs on train only
        if step == "train":
            assert set(t["conf"]) == GPU_KEYS
            assert t["conf"]["spark.executor.resource.gpu.amount"] == "1"
            assert t["conf"]["spark.task.resource.gpu.amount"] == "1"
            assert t["conf"]["spark.executor.resource.gpu.discoveryScript"] == str(
                deploy / "scripts" / "get_gpus_resources.sh"
            )
        else:
            assert not GPU_KEYS & set(t["conf"]), (step, t["conf"])
        # ... and the command line spark-submit gets
        cmd = t["spark_submit"]
        assert isinstance(cmd, list), cmd
        assert cmd[0] == "spark-submit" and cmd[cmd.index("--master") + 1] == "local[2]", cmd
        assert cmd[-3:] == [str(deploy / "jobs" / f"{step}.py"), "--config", cfg], cmd
        assert cmd[cmd.index("--packages") + 1] == "io.delta:delta-spark_4.2_2.13:4.4.0", cmd
        assert cmd[cmd.index("--py-files") + 1] == str(wheel), cmd
        confs = [cmd[i + 1].split("=", 1)[0] for i, a in enumerate(cmd) if a == "--conf"]
        assert set(confs) == (GPU_KEYS if step == "train" else set()), (step, cmd)

    on, off = r["gpu_on"], r["gpu_off"]
    for step in STEPS:
        a, b = on["tasks"][step], off["tasks"][step]
        for t in (a, b):
            assert t["application"] == f"/jobs/{step}.py"
            assert t["conn_id"] == "spark_test"
            assert t["py_files"] is None
            assert t["config_default"][:2] == ["--config", "/cfg/p.yaml"]
        assert not GPU_KEYS & set(b["conf"]), (step, b["conf"])
        assert "--py-files" not in b["spark_submit"], b["spark_submit"]
        assert b["spark_submit"][b["spark_submit"].index("--master") + 1] == "yarn"
        if step == "train":
            assert "spark.executor.resource.gpu.discoveryScript=/gpu.sh" in a["spark_submit"]
            assert not any("resource.gpu" in x for x in b["spark_submit"]), b["spark_submit"]
            assert a["conf"]["spark.executor.resource.gpu.discoveryScript"] == "/gpu.sh"
            assert set(a["conf"]) == GPU_KEYS
            assert b["application_args"][2:] == ["--time-limit", "600"]
        else:
            assert not GPU_KEYS & set(a["conf"]), (step, a["conf"])
            assert len(b["application_args"]) == 2
