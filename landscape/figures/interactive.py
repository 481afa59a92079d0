"""Interactive HTML views of a 2D surface: one self-contained page, turned and read in a browser.

A page holds two linked views of the same grid: the 3D surface (WebGL, rotatable) on the left and
a heatmap with contour lines on the right, with the optimizer path drawn on both when a trajectory
is given (on the 3D surface at its heights, labelled with epochs). Hovering either view reads
every metric of the file at that point and marks the point on the other view. Three rows of
buttons choose the split (train / test), the quantity (loss / accuracy / each criterion) and the
scale (linear / log10).

Built with plotly (the optional extra ``interactive``): it writes one HTML file with its
JavaScript embedded (``include_plotlyjs=True``), so the page opens without a server and without
network access, and a figure object that Jupyter displays inline.

How it is drawn:

- one group of traces per (column, scale): the surface, the heatmap, contour lines and the path
  on the surface; the buttons show one group (a small script in the page keeps the three choices
  and picks the group), the log group exists for positive columns other than accuracy;
- array convention (docs/CONTRACTS.md): ``A[i, j]`` is the value at ``(x[i], y[j])``; plotly's
  ``z[row][col]`` is at ``(x[col], y[row])``, so every array is transposed here;
- a partial file (``landscape surface`` computes coarse levels first) is drawn at its finest
  complete level, as ``landscape plot`` does (:func:`landscape.figures.views.coarse_view`), and
  marked "partial: N of M points" in the title; points not computed in what is drawn (a file
  with no complete level) and diverged points are gaps: the heatmap leaves them blank and the
  surface has holes there. Nothing is interpolated; contour lines, which would be, are drawn
  only for a column computed and finite everywhere.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from landscape.atomic import write_text_atomic
from landscape.engine.check import display_units
from landscape.engine.grid import Grid
from landscape.errors import GridError, MissingExtraError, install_hint
from landscape.figures import estimates, views
from landscape.io.surface_file import SurfaceFile, read_surface
from landscape.io.trajectory_file import TrajectoryPoints, load_trajectory

__all__ = ["InteractiveFigure", "interactive_figure", "plotly_available", "require_plotly",
           "write_interactive", "write_views"]

SUFFIX = "_interactive.html"
_SPLITS = ("train", "test")
_PATH_COLOUR = "#ff1f1f"  # pure red: absent from viridis, so a screenshot test can find the path
_HEIGHT = 640


class SurfaceLike(Protocol):
    """What the Python API's ``Surface`` offers: coordinates, metric arrays, done mask, attributes."""

    @property
    def x(self) -> np.ndarray: ...
    @property
    def y(self) -> np.ndarray | None: ...
    @property
    def values(self) -> dict[str, np.ndarray]: ...
    @property
    def done(self) -> np.ndarray | None: ...
    @property
    def attrs(self) -> dict[str, Any]: ...


# --- the optional extra ----------------------------------------------------------------------------


def require_plotly() -> ModuleType:
    """``plotly.graph_objects``, or a :class:`MissingExtraError` naming the extra to install."""
    try:
        import plotly.graph_objects as go
    except ImportError as err:
        raise MissingExtraError("interactive HTML needs plotly, which the default install leaves out: "
                                f"{install_hint('interactive')}") from err
    module: ModuleType = go
    return module


def plotly_available() -> bool:
    try:
        require_plotly()
    except MissingExtraError:
        return False
    return True


# --- inputs ------------------------------------------------------------------------------------------


def _as_surface_file(surface: str | Path | SurfaceFile | SurfaceLike) -> SurfaceFile:
    if isinstance(surface, SurfaceFile):
        return surface
    if isinstance(surface, str | Path):
        return read_surface(surface)
    grid = Grid(np.asarray(surface.x, dtype=np.float64), None if surface.y is None else np.asarray(surface.y, dtype=np.float64))
    done = np.ones(grid.shape, dtype=bool) if surface.done is None else np.asarray(surface.done, dtype=bool)
    attrs = dict(surface.attrs)
    extra = {k: np.asarray(v) for k, v in getattr(surface, "extra", {}).items()}  # a progressive surface's errors and masks
    return SurfaceFile(Path(str(attrs.get("path", "surface"))), grid, list(surface.values),
                       {k: np.asarray(v, dtype=np.float64) for k, v in surface.values.items()}, done, attrs, extra=extra)


# --- arrays → JSON-ready lists -------------------------------------------------------------------------


def _plain(a: np.ndarray) -> list[Any]:
    """Nested lists of floats (6 significant digits) with None for NaN/inf: plotly's gaps."""
    out: list[Any] = np.where(np.isfinite(a), a, np.nan).astype(object).tolist()

    def clean(v: Any) -> Any:
        if isinstance(v, list):
            return [clean(u) for u in v]
        return None if v is None or math.isnan(v) else float(f"{v:.6g}")

    return [clean(v) for v in out]


@dataclass(frozen=True)
class _Column:
    """One metric of the file: its name, the (split, quantity) buttons that select it, its values."""

    name: str
    split: str  # "train", "test", or "" for a column without a split prefix
    quantity: str  # "loss", "acc", "mse", ...
    z: np.ndarray  # (len(x), len(y)); NaN where not computed or diverged

    @property
    def complete(self) -> bool:
        return bool(np.isfinite(self.z).all())

    @property
    def scales(self) -> tuple[str, ...]:
        """linear, and log10 for a positive quantity other than accuracy."""
        finite = self.z[np.isfinite(self.z)]
        positive = finite.size > 0 and finite.min() > 0
        return ("linear", "log") if positive and self.quantity != "acc" else ("linear",)


def _columns(sf: SurfaceFile) -> list[_Column]:
    out = []
    for name in sf.columns:
        split, _, quantity = name.partition("_")
        if split not in _SPLITS or not quantity:
            split, quantity = "", name
        z = np.where(sf.done & np.isfinite(sf.values[name]), sf.values[name], np.nan)
        out.append(_Column(name, split, quantity, z))
    return out


# --- the figure ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InteractiveFigure:
    """A plotly figure plus the page script that runs its buttons and links its two views.

    ``save(path)`` writes one self-contained HTML file; in Jupyter the object displays inline
    (``_repr_html_``, with plotly.js embedded, so it works offline too). ``figure`` is the plain
    plotly ``Figure`` (it shows the initial view; the buttons need the script).
    """

    figure: Any  # plotly.graph_objects.Figure (plotly is an optional extra: not imported at module level)
    script: str

    def to_html(self, full_html: bool = True, div_id: str | None = None) -> str:
        """The page (``full_html``) or a ``<div>`` with its scripts; ``div_id`` None: a random id."""
        return str(self.figure.to_html(full_html=full_html, include_plotlyjs=True, include_mathjax=False,
                                       post_script=self.script, div_id=div_id,
                                       config={"displaylogo": False, "responsive": True}))

    def save(self, path: str | Path) -> Path:
        """Write the page to ``path`` (atomically: a temporary file renamed over it); returns the path.

        The plot's element id is a hash of the figure, so the same surface gives the same bytes.
        """
        target = Path(path)
        digest = hashlib.sha256((self.figure.to_json() + self.script).encode()).hexdigest()[:16]
        write_text_atomic(target, self.to_html(div_id=f"landscape-{digest}"))
        return target

    def _repr_html_(self) -> str:
        return self.to_html(full_html=False)


def interactive_figure(surface: str | Path | SurfaceFile | SurfaceLike,
                       trajectory: str | Path | TrajectoryPoints | None = None, *, metric: str = "train_loss",
                       log: bool | None = None, title: bool | str | None = True) -> InteractiveFigure:
    """The interactive view of a 2D surface (a file path, a read surface file or the API's ``Surface``).

    ``trajectory`` (a trajectory file or its points) draws the optimizer path, epoch-labelled, on
    both views. ``metric`` is the column shown first; ``log`` its scale (None: log10 for a
    positive loss spanning more than a decade, as the static figures choose). ``title`` True
    gives "<model> on <data>", a string that text, False none. Raises :class:`GridError` for a 1D
    surface and :class:`MissingExtraError` without plotly.
    """
    go = require_plotly()
    from plotly.subplots import make_subplots

    sf, partial = views.coarse_view(_as_surface_file(surface))  # a partial file: its finest complete level
    if sf.grid.y is None:
        raise GridError(f"an interactive view needs a 2D surface, and {str(sf.path)!r} is 1D")
    first = views.resolve_metric(sf.columns, metric, repr(str(sf.path)))
    if trajectory is not None and not isinstance(trajectory, TrajectoryPoints):
        views.check_same_plane(sf, Path(trajectory))
        trajectory = load_trajectory(trajectory)
    path = trajectory
    columns = _columns(sf)
    if log is None:
        log = views.auto_log(first, sf.values[first][sf.done])
    x, y = sf.grid.x, sf.grid.y
    x_label, y_label = str(sf.attrs.get("x_label") or "α"), str(sf.attrs.get("y_label") or "β")
    if path is not None:
        x_label, y_label = views.path_labels(sf, path)

    fig = make_subplots(rows=1, cols=2, column_widths=[0.52, 0.48], horizontal_spacing=0.08,
                        specs=[[{"type": "scene"}, {"type": "xy"}]])
    hover, custom = _hover(sf, columns, x_label, y_label)
    groups: dict[str, list[int]] = {}
    labels: dict[str, str] = {}
    for column in columns:
        for scale in column.scales:
            key = f"{column.name}|{scale}"
            labels[key] = ("log10 " if scale == "log" else "") + views.metric_label(column.name)
            first_trace = len(fig.data)
            for trace, col in _group_traces(go, sf, column, scale, path, x, y, custom, hover, labels[key]):
                fig.add_trace(trace, row=1, col=col)
            groups[key] = list(range(first_trace, len(fig.data)))
    always = list(range(len(fig.data), len(fig.data) + 3))
    for trace, col in _shared_traces(go, path):
        fig.add_trace(trace, row=1, col=col)

    start = f"{first}|{'log' if log and 'log' in _by_name(columns, first).scales else 'linear'}"
    for key, indices in groups.items():
        for i in indices:
            fig.data[i].visible = key == start
    _layout(fig, sf, columns, _by_name(columns, first), start, labels[start], x_label, y_label, title, partial)
    spec = {"groups": groups, "labels": labels, "always": always, "cursor2d": always[1], "cursor3d": always[2],
            "columns": {f"{c.split}|{c.quantity}": c.name for c in columns},
            "state": {"split": _by_name(columns, first).split, "quantity": _by_name(columns, first).quantity,
                      "scale": start.partition("|")[2]}}
    return InteractiveFigure(fig, _SCRIPT.replace("SPEC", json.dumps(spec)))


def _by_name(columns: list[_Column], name: str) -> _Column:
    return next(c for c in columns if c.name == name)


def _hover(sf: SurfaceFile, columns: list[_Column], x_label: str, y_label: str) -> tuple[str, list[Any]]:
    """The hover template and its per-point data (ny, nx, k): every metric at the point, then, for a
    progressive surface, the standard errors shown as "value ± s.e." and a word for a point that was
    interpolated (``--refine``) or stopped above the range."""
    errors = {c.name: err for c in columns if (err := estimates.stderr_of(sf, c.name)) is not None}
    stack = [c.z.T for c in columns] + [errors[name].T for name in errors]
    rows = [f"{x_label} = %{{x:.4g}}", f"{y_label} = %{{y:.4g}}"]
    for k, c in enumerate(columns):
        spread = f" ± %{{customdata[{len(columns) + list(errors).index(c.name)}]:.2g}}" if c.name in errors else ""
        rows.append(f"{views.metric_label(c.name)} = %{{customdata[{k}]:.4g}}{spread}")
    custom: list[Any] = _plain(np.stack(stack, axis=-1))  # (ny, nx, k)
    filled = estimates.interpolated(sf)
    above = sf.extra.get("above") if sf.attrs.get("progressive") else None
    words = np.full(sf.grid.shape, "", dtype=object)
    if above is not None:
        words[np.asarray(above, dtype=bool) & sf.done] = "stopped above the range"
    if filled is not None:
        words[filled] = "interpolated"
    if (words != "").any():
        rows.append(f"%{{customdata[{len(stack)}]}}")
        custom = [[[*point, words.T[r][q]] for q, point in enumerate(row)] for r, row in enumerate(custom)]
    return "<br>".join(rows) + "<extra></extra>", custom


def _group_traces(go: ModuleType, sf: SurfaceFile, column: _Column, scale: str, path: TrajectoryPoints | None,
                  x: np.ndarray, y: np.ndarray, custom: list[Any], hover: str, label: str) -> list[tuple[Any, int]]:
    """The traces of one (column, scale): surface (col 1), heatmap and contour lines (col 2), path on the surface."""
    z = display_units(column.z, scale == "log")
    zt = _plain(z.T)  # (ny, nx): plotly's rows are y
    xs, ys = _plain(x), _plain(y)
    traces: list[tuple[Any, int]] = [
        # slightly see-through, so that the path lying on the surface is not hidden where it dips under a fold
        (go.Surface(x=xs, y=ys, z=zt, customdata=custom, hovertemplate=hover, colorscale="Viridis", showscale=False,
                    name=label, connectgaps=False, opacity=0.85), 1),
        (go.Heatmap(x=xs, y=ys, z=zt, customdata=custom, hovertemplate=hover, colorscale="Viridis", name=label,
                    connectgaps=False, zsmooth=False, colorbar={"title": {"text": label, "side": "right"}, "len": 0.9}), 2),
    ]
    if column.complete:  # contour lines interpolate between grid points: only where nothing is missing
        traces.append((go.Contour(x=xs, y=ys, z=zt, contours={"coloring": "none"}, ncontours=16, showscale=False,
                                  line={"color": "rgba(255,255,255,0.55)", "width": 1}, hoverinfo="skip", name=label), 2))
    if path is not None:
        heights = views.path_heights(sf, column.name, path)
        heights = display_units(heights, scale == "log")
        traces.append((go.Scatter3d(x=_plain(path.coords[:, 0]), y=_plain(path.coords[:, 1]), z=_plain(heights),
                                    mode="lines+markers+text", text=views.epoch_labels(path), textposition="top center",
                                    marker={"size": 4, "color": _PATH_COLOUR}, line={"color": _PATH_COLOUR, "width": 7},
                                    textfont={"color": "black", "size": 10}, name="optimizer path",
                                    hovertemplate="epoch %{text}<extra></extra>"), 1))
    return traces


def _shared_traces(go: ModuleType, path: TrajectoryPoints | None) -> list[tuple[Any, int]]:
    """Always shown: the path on the heatmap (or an empty trace), and the two hover cursors."""
    if path is not None:
        path2d = go.Scatter(x=_plain(path.coords[:, 0]), y=_plain(path.coords[:, 1]), mode="lines+markers+text",
                            text=views.epoch_labels(path), textposition="top right",
                            textfont={"color": "white", "size": 10}, marker={"size": 6, "color": _PATH_COLOUR},
                            line={"color": _PATH_COLOUR, "width": 2}, name="optimizer path",
                            hovertemplate="epoch %{text}<br>(%{x:.4g}, %{y:.4g})<extra></extra>")
    else:
        path2d = go.Scatter(x=[], y=[], mode="markers", hoverinfo="skip", showlegend=False)
    cursor2d = go.Scatter(x=[None], y=[None], mode="markers", hoverinfo="skip", showlegend=False, name="cursor",
                          marker={"symbol": "circle-open", "size": 14, "color": "white", "line": {"width": 2}})
    cursor3d = go.Scatter3d(x=[None], y=[None], z=[None], mode="markers", hoverinfo="skip", showlegend=False,
                            name="cursor", marker={"size": 5, "color": "white", "line": {"color": "black", "width": 2}})
    return [(path2d, 2), (cursor2d, 2), (cursor3d, 1)]


def _eye(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> dict[str, float]:
    """Camera position: on the downhill side of the surface, so its slopes face the viewer.

    A least-squares plane ``z ≈ a + b·u + c·v`` over the grid in the scene's unit coordinates
    (u, v in [-1, 1]) gives the uphill direction (b, c); the camera looks from the opposite side
    (a slope rising away from the viewer hides nothing in front of it, e.g. the optimizer path).
    A bowl without a tilt keeps the default corner.
    """
    u = (x - x.mean()) / max(np.ptp(x) / 2, 1e-12)
    v = (y - y.mean()) / max(np.ptp(y) / 2, 1e-12)
    uu, vv = np.meshgrid(u, v, indexing="ij")  # (len(x), len(y)), as z
    ok = np.isfinite(z)
    b, c = (0.0, 0.0)
    if ok.sum() >= 3 and np.ptp(z[ok]) > 0:
        design = np.column_stack([np.ones(ok.sum()), uu[ok], vv[ok]])
        _, b, c = np.linalg.lstsq(design, (z[ok] - z[ok].min()) / np.ptp(z[ok]), rcond=None)[0]
    if math.hypot(b, c) < 0.1:
        return {"x": 1.45, "y": -1.45, "z": 1.0}
    r = 2.05 / math.hypot(b, c)
    return {"x": float(-b * r), "y": float(-c * r), "z": 1.0}


def _buttons(name: str, options: list[tuple[str, str]], active: str, x: float) -> dict[str, Any]:
    """One row of buttons; method "skip": the page script reacts to the click (plotly_buttonclicked)."""
    return {"type": "buttons", "direction": "right", "showactive": True, "x": x, "y": 1.16, "xanchor": "left",
            "yanchor": "top", "pad": {"r": 4, "t": 0}, "name": name,
            "active": [value for _, value in options].index(active),
            "buttons": [{"label": label, "method": "skip", "args": [name, value]} for label, value in options]}


def _layout(fig: Any, sf: SurfaceFile, columns: list[_Column], first: _Column, start: str, label: str, x_label: str,
            y_label: str, title: bool | str | None, partial: str | None) -> None:
    splits = list(dict.fromkeys(c.split for c in columns))
    quantities = list(dict.fromkeys(c.quantity for c in columns))
    has_log = any("log" in c.scales for c in columns)
    menus = [_buttons("split", [(s or "-", s) for s in splits], first.split, 0.0),
             _buttons("quantity", [({"acc": "accuracy"}.get(q, q.replace("_", " ")), q) for q in quantities],
                      first.quantity, 0.16)]
    if has_log:
        menus.append(_buttons("scale", [("linear", "linear"), ("log10", "log")], start.partition("|")[2], 0.62))
    text = views.figure_title(sf, title) or ""
    if partial:
        mark = partial.replace("\n", "; ") + ("" if sf.done.all() else "; gaps: not computed")
        text = f"{text} — {mark}" if text else mark
    fig.update_layout(
        title={"text": text, "x": 0.5, "y": 0.98, "yanchor": "top"}, height=_HEIGHT, margin={"l": 10, "r": 10, "t": 110, "b": 50},
        updatemenus=menus, showlegend=False, paper_bgcolor="white", hovermode="closest",
        scene={"xaxis": {"title": {"text": x_label}}, "yaxis": {"title": {"text": y_label}},
               "zaxis": {"title": {"text": label}}, "aspectmode": "manual",
               "aspectratio": {"x": 1.0, "y": 1.0, "z": 0.7}, "camera": {"eye": _eye(sf.grid.x, np.asarray(sf.grid.y), first.z)}},
        xaxis={"title": {"text": x_label}, "constrain": "domain"},
        yaxis={"title": {"text": y_label}},
        annotations=[{"text": "", "name": "status", "xref": "paper", "yref": "paper", "x": 1.0, "y": 1.13, "xanchor": "right",
                      "yanchor": "top", "showarrow": False, "font": {"color": "#b00020"}},
                     *[{"text": menu["name"], "xref": "paper", "yref": "paper", "x": menu["x"], "y": 1.17, "xanchor": "left",
                        "yanchor": "bottom", "showarrow": False, "font": {"size": 11, "color": "#555"}} for menu in menus]],
    )


# The page script: keeps the three choices, shows the group of traces they select, links the hover of
# the two views. `gd` is the plot's div; `v` the spec written by interactive_figure. The chosen group
# is also written to the div's data-shown attribute (the browser test reads it).
_SCRIPT = """
var gd = document.getElementById('{plot_id}');
var v = SPEC;
function groupOf(s) {
  var col = v.columns[s.split + '|' + s.quantity];
  if (col === undefined) { return null; }
  return v.groups[col + '|' + s.scale] ? col + '|' + s.scale : col + '|linear';
}
function show(s) {
  var key = groupOf(s);
  if (key === null) {
    Plotly.relayout(gd, {'annotations[0].text': 'no ' + s.split + ' ' + s.quantity + ' in this file'});
    return false;
  }
  var shown = {};
  v.groups[key].concat(v.always).forEach(function (i) { shown[i] = true; });
  var visible = gd.data.map(function (_, i) { return shown[i] === true; });
  Plotly.restyle(gd, {visible: visible});
  Plotly.relayout(gd, {'scene.zaxis.title.text': v.labels[key], 'annotations[0].text': ''});
  gd.setAttribute('data-shown', key);
  return true;
}
gd.on('plotly_buttonclicked', function (ev) {
  var a = ev.button.args, next = {split: v.state.split, quantity: v.state.quantity, scale: v.state.scale};
  next[a[0]] = a[1];
  if (show(next)) { v.state = next; }
});
function pointOf(ev, type) {  // the hovered point of that trace type (the path can be first under the mouse)
  return (ev.points || []).filter(function (p) { return p.data.type === type; })[0];
}
gd.on('plotly_hover', function (ev) {
  var heat = pointOf(ev, 'heatmap'), surf = pointOf(ev, 'surface');
  if (heat) {
    Plotly.restyle(gd, {x: [[heat.x]], y: [[heat.y]], z: [[heat.z]]}, [v.cursor3d]);
  } else if (surf) {
    Plotly.restyle(gd, {x: [[surf.x]], y: [[surf.y]]}, [v.cursor2d]);
  }
});
gd.on('plotly_unhover', function () {
  Plotly.restyle(gd, {x: [[null]], y: [[null]]}, [v.cursor2d]);
  Plotly.restyle(gd, {x: [[null]], y: [[null]], z: [[null]]}, [v.cursor3d]);
});
gd.setAttribute('data-shown', groupOf(v.state));
"""


# --- files ------------------------------------------------------------------------------------------------


def write_interactive(surface: str | Path, out_dir: str | Path, *, trajectory: str | Path | None = None,
                      metric: str = "train_loss", log: bool | None = None, title: bool | str | None = True,
                      skip_1d: bool = False, name: str | None = None) -> list[Path]:
    """Write ``<out_dir>/<name>_interactive.html`` (``name``: the surface file's stem); returns ``[path]``.

    A 1D surface raises :class:`GridError`, or is skipped (``[]``) with ``skip_1d``.
    """
    require_plotly()
    sf = read_surface(surface)
    if sf.grid.y is None and skip_1d:
        return []
    page = interactive_figure(sf, trajectory, metric=metric, log=log, title=title)
    return [page.save(Path(out_dir) / f"{name or Path(surface).stem}{SUFFIX}")]


def write_views(surfaces: Sequence[tuple[Path, Path | None, str]], out_dir: Path, *, metric: str = "train_loss",
                log: bool | None = None, title: bool | str | None = True, required: bool = False) -> list[Path]:
    """The interactive view of each 2D surface, given as (surface file, trajectory or None, name).

    For ``landscape run`` and ``landscape compare``: without plotly nothing is written and no error
    raised (their index page says how to get the views), unless ``required`` (the user asked for
    the format ``html``): then :class:`MissingExtraError`. 1D surfaces are skipped, and a surface
    without ``metric`` opens on its first column.
    """
    if not plotly_available():
        if required:
            require_plotly()
        return []
    written: list[Path] = []
    for surface, trajectory, name in surfaces:
        columns = read_surface(surface).columns
        written += write_interactive(surface, out_dir, trajectory=trajectory, metric=metric if metric in columns else columns[0],
                                     log=log, title=title, skip_1d=True, name=name)
    return written
