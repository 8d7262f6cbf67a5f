"""The quick-start notebook runs headless, in order, on the shared session, so it cannot rot: its code
cells are executed as they are (no magics to strip) with a non-interactive matplotlib backend."""

import json
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"


@pytest.mark.spark
def test_quickstart_notebook_runs(spark, tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.setenv("TMA_SPARK_NOTEBOOK_DIR", str(tmp_path))
    cells = [c for c in json.loads(NOTEBOOK.read_text())["cells"] if c["cell_type"] == "code"]
    namespace: dict = {}
    for cell in cells:
        assert not any(line.lstrip().startswith(("%", "!")) for line in cell["source"]), "no magics"
        exec(compile("".join(cell["source"]), f"{NOTEBOOK.name}:{cell['id']}", "exec"), namespace)
    assert namespace["summary"]["nodes"] == 2708
    assert namespace["stats"]["parts"] == namespace["K"] == 2
    assert namespace["result"]["rounds"] >= 2 and len(namespace["rounds"]) == namespace["result"]["rounds"]
    assert namespace["evaluation"]["test"] > 0.5
    for png in ("partition_stats.png", "training_curves.png"):
        assert (tmp_path / png).stat().st_size > 10_000  # a real plot, not an empty canvas
