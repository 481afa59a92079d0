"""Results that display themselves in Jupyter, and examples/quickstart.ipynb executed headless (nbclient)."""

from __future__ import annotations

import base64
import html
import io
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from frameworks import need
from matplotlib.image import imread
from torch import nn

import landscape

REPO = Path(__file__).resolve().parents[1]


def _small() -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(40, 3, generator=g)
    y = (x[:, 0] > 0).long()
    torch.manual_seed(3)
    return nn.Linear(3, 2), (x, y)


def _cells(page: str) -> list[str]:
    return [html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", page)]


def test_surface_displays_its_contour_and_a_table() -> None:
    model, data = _small()
    s = landscape.surface(model, data, x=(-1.0, 1.0, 5), y=(-2.0, 2.0, 5), progress=False)
    png = imread(io.BytesIO(s._repr_png_()), format="png")
    fig = landscape.plot(s, "contour")
    assert png.shape[:2] == tuple(round(v) for v in fig.get_size_inches()[::-1] * 100)
    cells = _cells(s._repr_html_())
    row = cells[cells.index("train_loss"):][:4]
    loss = s["train_loss"]
    assert [float(v) for v in row[1:]] == pytest.approx([loss.min(), loss.max(), loss[2, 2]], rel=1e-5)
    # the origin's value is the model's own loss (an independent evaluation)
    assert loss[2, 2] == pytest.approx(float(nn.functional.cross_entropy(model(data[0]), data[1]).detach()), rel=1e-5)
    line = landscape.surface(model, data, x=(-1.0, 1.0, 5), y=None, progress=False)
    assert imread(io.BytesIO(line._repr_png_()), format="png").ndim == 3
    assert "5 grid" in line._repr_html_()


def test_trajectory_and_hessian_tables() -> None:
    model, data = _small()
    path = [nn.Linear(3, 2) for _ in range(3)]
    t = landscape.trajectory(path)
    cells = _cells(t._repr_html_())
    assert len(cells) == 3 * 7
    np.testing.assert_allclose([float(cells[7 * i + 4]) for i in range(3)], t.coords[:, 0], rtol=1e-5, atol=1e-7)
    assert imread(io.BytesIO(t._repr_png_()), format="png").shape[2] in (3, 4)
    over = landscape.surface(path[-1], data, directions=t, x=(-1.0, 1.0, 5), y=(-1.0, 1.0, 5), progress=False)
    drawn = landscape.plot(over, "trajectory", trajectory=t)  # a surface over the plane shows the path
    buf = io.BytesIO()
    drawn.savefig(buf, format="png", dpi=100)
    assert over._repr_png_() == buf.getvalue()
    h = landscape.hessian(model, data, top_k=2, progress=False)
    cells = _cells(h._repr_html_())
    assert cells[:4] == ["λ1", f"{h.eigenvalues[0]:.6g}", "λ2", f"{h.eigenvalues[1]:.6g}"]
    assert "trace (exact)" in cells and f"{h.trace:.6g}" in cells


def test_quickstart_notebook_runs_headless(tmp_path: Path) -> None:
    nbformat = need("nbformat", "notebook")
    nbclient = need("nbclient", "notebook")
    need("ipykernel", "notebook")
    nb = nbformat.read(REPO / "examples" / "quickstart.ipynb", as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs: list[dict[str, Any]] = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    results = {c.source.splitlines()[-1]: c.outputs[-1]["data"] for c in nb.cells
               if c.cell_type == "code" and c.outputs and c.outputs[-1].output_type == "execute_result"}
    assert {"image/png", "text/html"} <= set(results["t"]) and {"image/png", "text/html"} <= set(results["s"])
    assert "Trajectory: 7 points" in results["t"]["text/html"]  # the initial weights and 6 epochs
    assert "<td>train_loss</td>" in results["s"]["text/html"] and "λ1" in results["h"]["text/html"]
    path_figure = results['landscape.plot(s, "trajectory", trajectory=t)']["image/png"]
    img = imread(io.BytesIO(base64.b64decode(path_figure)), format="png")
    assert img.shape[0] > 200 and img[:, :, :3].std() > 0.05  # a drawing, not a blank image


def test_a_notebook_shows_the_widget_bar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a Jupyter kernel with ipywidgets, long work shows tqdm's notebook bar (a widget), and no
    warning; ``LANDSCAPE_QUIET`` (as everywhere) turns it off."""
    nbformat = need("nbformat", "notebook")
    nbclient = need("nbclient", "notebook")
    need("ipykernel", "notebook")
    need("ipywidgets", "notebook")
    code = ("import torch\nfrom torch import nn\nimport landscape\ntorch.manual_seed(0)\n"
            "s = landscape.surface(nn.Linear(3, 2), (torch.randn(20, 3), torch.randint(0, 2, (20,))), x=(-1.0, 1.0, 5), y=None)")

    def outputs(quiet: bool) -> list[Any]:
        if quiet:
            monkeypatch.setenv("LANDSCAPE_QUIET", "1")
        else:
            monkeypatch.delenv("LANDSCAPE_QUIET", raising=False)
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
        nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
        return list(nb.cells[0].outputs)

    shown = outputs(quiet=False)
    widgets = [o for o in shown if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(widgets) == 1 and "surface" in widgets[0]["data"]["text/plain"]
    assert not [o for o in shown if o.output_type in ("stream", "error")]  # no TqdmWarning, no error
    assert outputs(quiet=True) == []
