"""Every notebook runs top to bottom (nbclient), stored with outputs cleared, importing only tfattr."""

import glob
import json
import os
import re

import pytest

NOTEBOOKS = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "..", "notebooks", "*.ipynb")))
ALLOWED = {"tfattr", "numpy", "matplotlib", "os", "tempfile"}  # tfattr, display, and the standard library


def test_there_are_four_notebooks():
    assert [os.path.basename(p)[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_stored_clean_and_imports_only_tfattr(path):
    nb = json.load(open(path))
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        assert not cell.get("outputs") and cell.get("execution_count") is None, f"{path}: clear outputs before committing"
        src = "".join(cell["source"])
        for mod in re.findall(r"^\s*(?:from|import)\s+([\w.]+)", src, re.M):
            assert mod.split(".")[0] in ALLOWED, f"{path} imports {mod}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_runs(path, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
