"""The quick-start notebook's code cells run, in order, on the shared session (so it cannot rot)."""

import json
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"


@pytest.mark.spark
def test_quickstart_notebook_runs(spark):
    cells = [c for c in json.loads(NOTEBOOK.read_text())["cells"] if c["cell_type"] == "code"]
    namespace: dict = {}
    for cell in cells:
        exec(compile("".join(cell["source"]), f"{NOTEBOOK.name}:{cell['id']}", "exec"), namespace)
    assert namespace["summary"]["nodes"] == 2708
    assert namespace["lake"].meta.num_edges == 5278
