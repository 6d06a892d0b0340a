"""notebooks/analysis.ipynb: stored without outputs, executes headless on the committed results."""

import os

import pytest

from conftest import REPO

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
NOTEBOOK = REPO / "notebooks" / "analysis.ipynb"


def test_the_analysis_notebook_is_stored_clean_and_redraws_the_committed_results():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "store the notebook without outputs"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
               MPLBACKEND="module://matplotlib_inline.backend_inline")
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(REPO / "notebooks")}}).execute(env=env)
    outputs = [o for c in code for o in c.outputs]
    text = "".join(o.get("text", "") for o in outputs)
    figures = sum("image/png" in o.get("data", {}) for o in outputs)
    assert not [o for o in outputs if o.output_type == "error"]
    assert "pretrain_table.csv: identical" in text and "ablation_table.csv: identical" in text
    markdown = "".join(o.get("data", {}).get("text/markdown", "") for o in outputs)
    assert "| transformer | reference |" in markdown  # the committed LRA rows (results/lra/runs) as report's table
    assert "lra_table.csv: identical" in text and "lra_speed.csv: identical" in text
    assert "lra_compare.csv: identical" in text and "lra_reach.csv: identical" in text
    assert figures == 5  # the three corpora's curves, the LRA chart, the LRA curves, the init test, the op benchmark
    plain = "".join(o.get("data", {}).get("text/plain", "") for o in outputs)
    assert "gpt, init lra, pos sinusoidal" in plain and "gpt, init gpt, pos sinusoidal" in plain
