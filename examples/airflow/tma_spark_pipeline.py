"""Airflow DAG ``tma_spark_pipeline``: the tma_spark pipeline as four spark-submit tasks.

    ingest >> partition >> train >> infer

Each task is a ``SparkSubmitOperator`` that runs one thin spark-submit entry point of the
repository's ``jobs/`` folder with the same YAML pipeline config
(``spark-submit jobs/<step>.py --config pipeline.yaml [overrides]``):

* ``ingest``    -- ``jobs/ingest.py``: reads the graph (nodes, edges, features, labels, splits)
  and writes it as a Delta lake.
* ``partition`` -- ``jobs/partition.py``: splits the lake's graph into K randomized (TMA /
  SuperTMA) parts and writes them next to it.
* ``train``     -- ``jobs/train.py``: trains one GNN per part on the executors and averages the
  models every round (time-based model aggregation); writes the run folder (checkpoints,
  metrics, final model). The only task that can ask Spark for GPUs (see ``gpu`` below).
* ``infer``     -- ``jobs/infer.py``: scores the graph with the trained model and writes the
  prediction table.

Which config file
-----------------
The ``--config`` path of every task is, first found wins:

1. the DAG-run param ``tma_spark_config`` ("Trigger DAG w/ config", or
   ``airflow dags trigger tma_spark_pipeline -c '{"tma_spark_config": "/path/p.yaml"}'``);
2. the Airflow Variable ``tma_spark_config`` (``airflow variables set tma_spark_config /path/p.yaml``);
3. the environment variable ``TMA_SPARK_CONFIG`` of the process that parses this file;
4. ``$TMA_SPARK_HOME/pipeline.yaml`` (``/opt/tma_spark/pipeline.yaml``).

The Variable is read with a Jinja template when a task runs, not when the file is parsed, so
parsing the DAG needs no metadata database or API call. The file must be readable by the
spark-submit driver (client mode: the Airflow worker; cluster mode: ship it, e.g. with
``--files``, or put it on shared storage).

Deployment settings (environment of the DAG processor / scheduler, read at parse time)
-------------------------------------------------------------------------------------
``TMA_SPARK_HOME``      where the repository is deployed (default ``/opt/tma_spark``).
``TMA_SPARK_JOBS_DIR``  folder with ``ingest.py`` ... ``infer.py`` (default ``$TMA_SPARK_HOME/jobs``).
``TMA_SPARK_WHEEL``     the package archive shipped with ``--py-files`` (default:
                        ``$TMA_SPARK_HOME/dist/tma_spark.zip`` from ``scripts/package.sh``: the wheel
                        under a ``.zip`` name, since spark-submit puts ``.zip`` files, not ``.whl``,
                        on the executors' Python path; set it to an empty string when tma_spark is
                        installed on every node instead).
``TMA_SPARK_CONN_ID``   the Spark connection (default ``spark_default``).
``TMA_SPARK_PACKAGES``  Maven coordinates for ``--packages`` (default the Delta package
                        ``io.delta:delta-spark_4.2_2.13:4.4.0``; empty string: none).
``TMA_SPARK_JARS``      comma-separated jars for ``--jars``, e.g. the output of
                        ``tma-spark jars --classpath`` on a cluster without Maven access
                        (then also set ``TMA_SPARK_PACKAGES=``).
``TMA_SPARK_GPU``       ``1``/``true``: give the ``train`` task one GPU per executor and per task
                        (``spark.executor.resource.gpu.amount=1``,
                        ``spark.task.resource.gpu.amount=1`` and the discovery script
                        ``$TMA_SPARK_HOME/scripts/get_gpus_resources.sh``, or
                        ``TMA_SPARK_GPU_DISCOVERY_SCRIPT``). The other tasks never ask for GPUs.

The same settings are the arguments of :func:`build_dag`, which builds the DAG; use it to define
more DAGs from one file (e.g. a GPU and a CPU variant under two DAG ids).

Deploy
------
1. Package tma_spark in the repository: ``bash scripts/package.sh`` (gives
   ``dist/tma_spark-<version>-py3-none-any.whl`` and ``dist/tma_spark.zip``), and deploy the repository (at least
   ``jobs/``, ``dist/`` and ``scripts/get_gpus_resources.sh``) to ``TMA_SPARK_HOME`` on the
   Airflow workers.
2. Install the Spark provider in the Airflow environment:
   ``pip install apache-airflow-providers-apache-spark`` (spark-submit must be on the workers'
   ``PATH``, or the connection's ``spark-home`` extra must point to a Spark 4.x).
3. Copy this file into the DAGs folder (``$AIRFLOW_HOME/dags``).
4. Set the Spark connection, e.g. for a standalone master:
   ``airflow connections add spark_default --conn-type spark --conn-host spark://master --conn-port 7077``
   (YARN: ``--conn-host yarn``; Kubernetes: ``--conn-host k8s://https://...``).
5. Point the DAG to the config: ``airflow variables set tma_spark_config /opt/tma_spark/pipeline.yaml``.

Re-runs and retries: every tma_spark step refuses an existing output unless it is told to
overwrite it (``overwrite`` in the config or ``--overwrite`` on the command line; ``train`` can
also ``--resume`` from its last checkpoint). For a scheduled DAG, or for task retries to be
useful after a partial write, put these in the config or pass them with ``step_args``.

Checked by ``tests/test_airflow_dag.py`` (Airflow 3.x; ``bash scripts/setup_airflow.sh`` makes its
virtual environment). Works with Airflow 2.x too (``airflow.DAG`` fallback).
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from typing import Mapping, Optional, Sequence

try:  # Airflow 3.x: the public Task SDK
    from airflow.sdk import DAG, Param
except ImportError:  # Airflow 2.x
    from airflow import DAG
    from airflow.models.param import Param

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

DAG_ID = "tma_spark_pipeline"
STEPS = ("ingest", "partition", "train", "infer")
CONFIG_KEY = "tma_spark_config"  # DAG param and Airflow Variable
DELTA_PACKAGE = "io.delta:delta-spark_4.2_2.13:4.4.0"

GPU_CONF_AMOUNTS = {
    "spark.executor.resource.gpu.amount": "1",
    "spark.task.resource.gpu.amount": "1",
}
GPU_DISCOVERY_KEY = "spark.executor.resource.gpu.discoveryScript"


def _env(name: str, default: Optional[str]) -> Optional[str]:
    """Environment value; ``default`` when unset; None when set to an empty string."""
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip() or None


def _env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def _home() -> str:
    return os.environ.get("TMA_SPARK_HOME") or "/opt/tma_spark"


def _default_wheel() -> Optional[str]:
    if "TMA_SPARK_WHEEL" in os.environ:
        return _env("TMA_SPARK_WHEEL", None)
    archive = os.path.join(_home(), "dist", "tma_spark.zip")
    return archive if os.path.isfile(archive) else None


def config_template(default_config: str) -> str:
    """Jinja template of the ``--config`` value: DAG-run param, else Variable, else ``default_config``."""
    return (
        "{{ params.%s or var.value.get('%s', %s) }}"
        % (CONFIG_KEY, CONFIG_KEY, json.dumps(default_config))
    )


def gpu_conf(discovery_script: str) -> dict:
    """The Spark confs that give each executor and each task one GPU."""
    return {**GPU_CONF_AMOUNTS, GPU_DISCOVERY_KEY: discovery_script}


def build_dag(
    dag_id: str = DAG_ID,
    *,
    config: Optional[str] = None,
    jobs_dir: Optional[str] = None,
    wheel: Optional[str] = "auto",
    conn_id: Optional[str] = None,
    packages: Optional[str] = "auto",
    jars: Optional[str] = "auto",
    gpu: Optional[bool] = None,
    gpu_discovery_script: Optional[str] = None,
    spark_conf: Optional[Mapping[str, str]] = None,
    step_args: Optional[Mapping[str, Sequence[str]]] = None,
    schedule: Optional[str] = None,
    retries: int = 2,
    retry_delay: timedelta = timedelta(minutes=5),
) -> DAG:
    """Build the four-task pipeline DAG.

    Every argument left at its default comes from the environment (see the module docstring).

    Args:
        dag_id: the DAG id.
        config: default ``--config`` path when neither the DAG-run param nor the Airflow
            Variable ``tma_spark_config`` is set.
        jobs_dir: folder with the spark-submit entry points ``<step>.py``.
        wheel: the tma_spark archive for ``--py-files`` (the wheel renamed ``.zip``); None: no ``--py-files``.
        conn_id: the Airflow Spark connection.
        packages: ``--packages`` (Maven coordinates); None: none.
        jars: ``--jars`` (comma-separated paths); None: none.
        gpu: GPU confs on the ``train`` task.
        gpu_discovery_script: path of ``get_gpus_resources.sh`` on the executors.
        spark_conf: extra Spark confs for every task.
        step_args: extra command-line overrides per step, e.g. ``{"train": ["--time-limit", "600"]}``.
        schedule: None (manual / triggered), or e.g. ``"@daily"``.
        retries, retry_delay: task retries.
    """
    home = _home()
    if config is None:
        config = os.environ.get("TMA_SPARK_CONFIG") or os.path.join(home, "pipeline.yaml")
    if jobs_dir is None:
        jobs_dir = os.environ.get("TMA_SPARK_JOBS_DIR") or os.path.join(home, "jobs")
    if wheel == "auto":
        wheel = _default_wheel()
    if conn_id is None:
        conn_id = os.environ.get("TMA_SPARK_CONN_ID") or "spark_default"
    if packages == "auto":
        packages = _env("TMA_SPARK_PACKAGES", DELTA_PACKAGE)
    if jars == "auto":
        jars = _env("TMA_SPARK_JARS", None)
    if gpu is None:
        gpu = _env_bool("TMA_SPARK_GPU")
    if gpu_discovery_script is None:
        gpu_discovery_script = os.environ.get("TMA_SPARK_GPU_DISCOVERY_SCRIPT") or os.path.join(
            home, "scripts", "get_gpus_resources.sh"
        )
    step_args = dict(step_args or {})
    unknown = set(step_args) - set(STEPS)
    if unknown:
        raise ValueError(f"step_args has unknown steps {sorted(unknown)}; the steps are {list(STEPS)}")
    config_arg = config_template(config)

    dag = DAG(
        dag_id=dag_id,
        description="tma_spark: ingest >> partition >> train >> infer with spark-submit",
        schedule=schedule,
        start_date=datetime(2024, 1, 1),
        catchup=False,
        max_active_runs=1,  # the steps write fixed output paths: never two runs at once
        default_args={"owner": "tma_spark", "retries": retries, "retry_delay": retry_delay},
        params={
            CONFIG_KEY: Param(
                None,
                type=["null", "string"],
                description=(
                    "Pipeline config (YAML) for --config. Empty: the Airflow Variable "
                    f"'{CONFIG_KEY}', else {config}."
                ),
            ),
        },
        tags=["tma_spark", "spark", "gnn"],
        doc_md=__doc__,
    )

    tasks = []
    with dag:
        for step in STEPS:
            conf = dict(spark_conf or {})
            if gpu and step == "train":
                conf.update(gpu_conf(gpu_discovery_script))
            tasks.append(
                SparkSubmitOperator(
                    task_id=step,
                    application=os.path.join(jobs_dir, f"{step}.py"),
                    application_args=["--config", config_arg, *[str(a) for a in step_args.get(step, ())]],
                    conn_id=conn_id,
                    name=f"tma_spark-{step}",
                    packages=packages,
                    jars=jars,
                    py_files=wheel,
                    conf=conf or None,
                )
            )
    for upstream, downstream in zip(tasks, tasks[1:]):
        upstream >> downstream
    return dag


dag = build_dag()
