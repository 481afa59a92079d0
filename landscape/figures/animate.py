"""Animations: the optimizer's path over its landscape, and the landscape over training.

A frame is one or more panels side by side, each a :class:`~matplotlib.figure.Figure` built by
the public functions of :mod:`landscape.figures.plot` (contour, filled contour, 3D surface,
training curves) with a few moving artists added on top:

- ``path``: the PCA-plane contour of the final model with the optimizer's path drawn up to the
  frame's moment, beside the loss-against-epoch curves drawn up to the same epoch;
- ``surface3d``: the same over the 3D surface, the camera turning slowly about the vertical;
- ``evolution``: the filled contour around each checkpoint in turn (one frame per checkpoint),
  beside the curves with a cursor at its epoch.

Between two checkpoints the path moves along the straight segment joining them, the segment
every static trajectory figure draws; nothing else is interpolated. Every frame of an
animation shares one colour scale (:func:`shared_scale`): the same levels and limits, computed
over all its surfaces, so colours mean the same loss in every frame.

Frames of ``path`` and ``surface3d`` reuse one figure whose moving artists are updated, so a
frame must be rendered (:func:`render`) before the next one is asked for; :func:`write_animation`
does that, into a GIF (Pillow) or an MP4 (ffmpeg).
"""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from mpl_toolkits.mplot3d.axes3d import Axes3D
from PIL import Image

from landscape.atomic import atomic_path
from landscape.engine.check import display_units
from landscape.engine.progress import bar
from landscape.errors import AnimationError
from landscape.figures import plot
from landscape.figures.planar import _include

__all__ = [
    "CURSOR_GID",
    "HEAD_GID",
    "PATH_GID",
    "Frame",
    "Scale",
    "along",
    "check_output",
    "evolution_frames",
    "path_frames",
    "render",
    "shared_scale",
    "write_animation",
]

PATH_GID = "landscape-anim-path"
"""``gid`` of the path drawn so far (2D or 3D line): its last point is where the optimizer is."""
HEAD_GID = "landscape-anim-head"
"""``gid`` of the marker on the optimizer's current position."""
CURSOR_GID = "landscape-anim-cursor"
"""``gid`` of the vertical line at the frame's epoch on the curves panel."""

_PATH_COLOUR = "tab:red"
_FORMATS = (".gif", ".mp4")
_FFMPEG_HELP = ("MP4 needs ffmpeg on the PATH: install it (Debian/Ubuntu: `apt install ffmpeg`; conda: "
                "`conda install -c conda-forge ffmpeg`) or write a .gif")


@dataclass(frozen=True)
class Frame:
    """One frame: its panels, drawn left to right."""

    panels: tuple[Figure, ...]


@dataclass(frozen=True)
class Scale:
    """One colour scale for every frame: limits over all frames, a level count, log or linear.

    The plot functions turn ``(vmin, vmax, levels, log)`` into round contour levels and a norm
    by a pure function of these four values, so every frame gets the same levels and norm.
    """

    vmin: float
    vmax: float
    levels: int
    log: bool


def shared_scale(surfaces: Sequence[np.ndarray], dones: Sequence[np.ndarray], log: bool, levels: int = 14) -> Scale:
    """Limits spanning the computed values of all ``surfaces``, and about ``levels`` contour levels.

    Only computed (``done``), finite values count, and on a log scale only positive ones: a
    diverged or missing point is masked in the figures, never stretched into the scale.
    """
    values = np.concatenate([np.asarray(z, dtype=np.float64)[np.asarray(done, dtype=bool)]
                             for z, done in zip(surfaces, dones, strict=True)] or [np.empty(0)])
    values = values[np.isfinite(values) & ((values > 0) if log else True)]
    if values.size == 0:
        raise AnimationError("no computed finite value to draw" + (" on a log scale (none is > 0)" if log else ""))
    lo, hi = float(values.min()), float(values.max())
    if not hi > lo:  # a flat surface: widen around it
        lo, hi = (lo / 2.0, hi * 2.0) if log else (lo - 0.5, hi + 0.5)
    return Scale(lo, hi, levels, log)


def along(points: np.ndarray, t: float) -> np.ndarray:
    """The polyline through ``points`` (n, d) from its start to parameter ``t`` ∈ [0, n − 1].

    Returns the points up to index ``⌊t⌋`` and, when ``t`` is not an integer, the point at
    fraction ``t − ⌊t⌋`` of the next segment: the path as far as the optimizer has come.
    """
    n = len(points)
    t = min(max(float(t), 0.0), n - 1.0)
    k = math.floor(t)
    frac = t - k
    if k >= n - 1 or frac == 0.0:
        return np.array(points[: k + 1], dtype=np.float64)
    head = points[k] + frac * (points[k + 1] - points[k])
    return np.vstack([points[: k + 1], head[None, :]]).astype(np.float64)


# --- the curves panel -------------------------------------------------------------------------------


class _Curves:
    """Loss against epoch (``plot.training_curves``), drawn up to the frame's epoch, a cursor there."""

    def __init__(self, curves: Mapping[str, tuple[np.ndarray, np.ndarray]], log: bool, width: plot.Width) -> None:
        self.figure = plot.training_curves(curves, log=log, width=width)
        ax = self.figure.axes[0]
        # training_curves draws one line per curve, in order
        self.lines = [(line, np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64))
                      for line, (xs, ys) in zip(ax.get_lines(), curves.values(), strict=True)]
        first = min(float(xs[0]) for _, xs, _ in self.lines) if self.lines else 0.0
        self.cursor = ax.axvline(first, color="0.35", lw=0.8, ls=":", gid=CURSOR_GID)

    def show(self, epoch: float) -> None:
        for line, xs, ys in self.lines:
            keep = xs <= epoch
            cut_x, cut_y = xs[keep], ys[keep]
            if keep.any() and not keep.all() and cut_x[-1] < epoch:  # the segment in progress
                cut_x = np.append(cut_x, epoch)
                cut_y = np.append(cut_y, np.interp(epoch, xs, ys))
            line.set_data(cut_x, cut_y)
        self.cursor.set_xdata([epoch, epoch])


# --- path and surface3d ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlaneStyle:
    """What the surface panels show: labels, colour scale and size."""

    metric_label: str = "loss"
    x_label: str = "PC1"
    y_label: str = "PC2"
    cmap: str = "viridis"
    width: plot.Width = "single"


def path_frames(x: np.ndarray, y: np.ndarray, z: np.ndarray, done: np.ndarray, coords: np.ndarray, epochs: np.ndarray,
                curves: Mapping[str, tuple[np.ndarray, np.ndarray]], *, frames: int, scale: Scale, style: PlaneStyle,
                kind: str = "path", heights: np.ndarray | None = None, turn: float = 90.0, elev: float = 30.0,
                azim: float = -60.0) -> Iterator[Frame]:
    """``frames`` frames of the optimizer moving along ``coords`` (n, 2) over the surface ``z``.

    ``kind`` "path" draws the contour (``plot.contour``) and the path in the plane; "surface3d"
    draws ``plot.surface3d`` with the path at ``heights`` (n,) (in metric units) and turns the
    camera by ``turn`` degrees over the animation. ``epochs`` (n,) gives each checkpoint's
    epoch; ``curves`` (name → (epochs, values)) the loss curves of the second panel. The last
    frame's path ends at the last checkpoint. Yields one figure pair, updated in place.
    """
    if frames < 2:
        raise AnimationError(f"an animation needs at least 2 frames, got {frames}")
    options = {"done": done, "metric_label": style.metric_label, "x_label": style.x_label, "y_label": style.y_label,
               "levels": scale.levels, "vmin": scale.vmin, "vmax": scale.vmax, "log": scale.log, "cmap": style.cmap,
               "width": style.width, "title": "epoch"}
    if kind == "surface3d":
        if heights is None:
            raise AnimationError("a 3D path needs the height of each checkpoint")
        del options["levels"]  # 3D: vmin/vmax set the colours; heights beyond vmax would be clipped flat
        del options["vmax"]
        figure = plot.surface3d(x, y, z, None, elev=elev, azim=azim, **options)  # type: ignore[arg-type]
        points = np.column_stack([coords, display_units(heights, scale.log)])  # heights as plot.surface3d draws them
    elif kind == "path":
        figure = plot.contour(x, y, z, **options)  # type: ignore[arg-type]
        points = np.asarray(coords, dtype=np.float64)
    else:
        raise AnimationError(f"unknown path animation kind {kind!r}; choose path or surface3d")
    ax = figure.axes[0]
    line, head = _moving_artists(ax, points)
    panel = _Curves(curves, log=scale.log, width=style.width)
    n = len(points)
    for f in range(frames):
        t = (n - 1) * f / (frames - 1)
        drawn = along(points, t)
        epoch = float(np.interp(t, np.arange(len(epochs)), epochs))  # linear between checkpoints
        if isinstance(ax, Axes3D):
            line.set_data_3d(drawn[:, 0], drawn[:, 1], drawn[:, 2])  # type: ignore[attr-defined]
            head.set_data_3d(drawn[-1:, 0], drawn[-1:, 1], drawn[-1:, 2])  # type: ignore[attr-defined]
            ax.view_init(elev=elev, azim=azim + turn * f / (frames - 1))
        else:
            line.set_data(drawn[:, 0], drawn[:, 1])
            head.set_data(drawn[-1:, 0], drawn[-1:, 1])
        ax.set_title(f"epoch {epoch:.1f}", fontsize=9)
        panel.show(epoch)
        yield Frame((figure, panel.figure))


def _moving_artists(ax: Axes, points: np.ndarray) -> tuple[Line2D, Line2D]:
    """The path line and the head marker (empty for now); the start is marked once, white."""
    if isinstance(ax, Axes3D):
        ax3 = cast(Axes3D, ax)
        ax3.plot(points[:1, 0], points[:1, 1], points[:1, 2], ls="none", marker="o", ms=5, mfc="white", mec="k", zorder=11)
        line = ax3.plot([], [], [], color=_PATH_COLOUR, lw=1.4, marker="o", ms=2.0, zorder=10, gid=PATH_GID)[0]
        head = ax3.plot([], [], [], ls="none", marker="o", ms=6, mfc=_PATH_COLOUR, mec="k", zorder=12, gid=HEAD_GID)[0]
        return line, head
    ax.plot(points[:1, 0], points[:1, 1], ls="none", marker="o", ms=5, mfc="white", mec="k", zorder=4)
    line = ax.plot([], [], color=_PATH_COLOUR, lw=1.2, marker="o", ms=2.0, zorder=3, gid=PATH_GID)[0]
    head = ax.plot([], [], ls="none", marker="o", ms=6, mfc=_PATH_COLOUR, mec="k", zorder=5, gid=HEAD_GID)[0]
    _include(ax, points[:, :2])  # the path may leave the plane's range: widen the limits to hold it
    return line, head


# --- evolution -------------------------------------------------------------------------------------------


def evolution_frames(x: np.ndarray, y: np.ndarray, surfaces: Sequence[np.ndarray], dones: Sequence[np.ndarray],
                     epochs: Sequence[float], curves: Mapping[str, tuple[np.ndarray, np.ndarray]], *, scale: Scale,
                     style: PlaneStyle) -> Iterator[Frame]:
    """One frame per surface: its filled contour (``plot.filled_contour``) on the shared ``scale``,
    beside the loss curves drawn up to its epoch."""
    if len(surfaces) < 2:
        raise AnimationError(f"an evolution needs at least 2 checkpoints, got {len(surfaces)}")
    panel = _Curves(curves, log=scale.log, width=style.width)
    for z, done, epoch in zip(surfaces, dones, epochs, strict=True):
        figure = plot.filled_contour(x, y, z, done=done, metric_label=style.metric_label, x_label=style.x_label,
                                     y_label=style.y_label, levels=scale.levels, vmin=scale.vmin, vmax=scale.vmax,
                                     log=scale.log, cmap=style.cmap, width=style.width, title=f"epoch {epoch:g}")
        panel.show(float(epoch))
        yield Frame((figure, panel.figure))


# --- rendering and writing -----------------------------------------------------------------------------


def render(frame: Frame, dpi: int) -> np.ndarray:
    """The frame's panels rendered at ``dpi`` and placed side by side: (height, width, 3) uint8."""
    images = []
    for figure in frame.panels:
        figure.set_dpi(dpi)
        canvas = FigureCanvasAgg(figure)
        canvas.draw()  # type: ignore[no-untyped-call]
        images.append(np.asarray(canvas.buffer_rgba())[..., :3])  # type: ignore[no-untyped-call]
    height = max(im.shape[0] for im in images)
    padded = [np.pad(im, ((0, height - im.shape[0]), (0, 0), (0, 0)), constant_values=255) for im in images]
    return np.ascontiguousarray(np.concatenate(padded, axis=1))


def check_output(out: Path) -> str | None:
    """The format of ``out`` from its suffix; the path of ffmpeg for MP4 (None for GIF). Raises early."""
    suffix = out.suffix.lower()
    if suffix not in _FORMATS:
        raise AnimationError(f"--out {str(out)!r}: the animation is written as .gif or .mp4, not {suffix or 'no suffix'!r}")
    if suffix == ".mp4":
        ffmpeg = shutil.which("ffmpeg")
        if ffmpeg is None:
            raise AnimationError(_FFMPEG_HELP)
        return ffmpeg
    return None


def write_animation(frames: Iterable[Frame], out: str | Path, *, fps: float, dpi: int, total: int) -> int:
    """Render every frame and write ``out`` (.gif through Pillow, .mp4 through ffmpeg); returns the frame count.

    Written through :func:`~landscape.atomic.atomic_path` like every file of the package: an
    interrupted animation leaves the previous file (or none), never a truncated one.
    """
    target = Path(out)
    ffmpeg = check_output(target)
    if not (fps > 0 and math.isfinite(fps)):
        raise AnimationError(f"--fps must be a number > 0, got {fps}")
    with atomic_path(target) as tmp, bar(total, "frames", unit="frame") as pbar:
        return (_write_mp4(frames, tmp, ffmpeg, fps, dpi, pbar.update) if ffmpeg is not None
                else _write_gif(frames, tmp, fps, dpi, pbar.update))


def _write_gif(frames: Iterable[Frame], tmp: Path, fps: float, dpi: int, tick: Callable[[int], object]) -> int:
    """All frames quantized to one palette (that of the first frame: the colours do not change)."""
    images = []
    palette: Image.Image | None = None
    for frame in frames:
        rgb = Image.fromarray(render(frame, dpi))
        if palette is None:
            palette = rgb.quantize(colors=256, method=Image.Quantize.MEDIANCUT)
        images.append(rgb.quantize(palette=palette, dither=Image.Dither.NONE))
        tick(1)
    if not images:
        raise AnimationError("no frame to write")
    images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
    return len(images)


def _write_mp4(frames: Iterable[Frame], tmp: Path, ffmpeg: str, fps: float, dpi: int, tick: Callable[[int], object]) -> int:
    """Raw RGB frames piped into ffmpeg (H.264, yuv420p, sizes padded to even numbers)."""
    count = 0
    proc: subprocess.Popen[bytes] | None = None
    try:
        for frame in frames:
            pixels = render(frame, dpi)
            if proc is None:
                h, w = pixels.shape[:2]
                proc = subprocess.Popen(
                    [ffmpeg, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
                     "-r", f"{fps:g}", "-i", "-", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2:color=white", "-c:v", "libx264",
                     "-pix_fmt", "yuv420p", "-f", "mp4", str(tmp)],
                    stdin=subprocess.PIPE, stderr=subprocess.PIPE)
            assert proc.stdin is not None
            proc.stdin.write(pixels.tobytes())
            count += 1
            tick(1)
    finally:
        if proc is not None:
            _, err = proc.communicate()
            if proc.returncode != 0:
                raise AnimationError(f"ffmpeg failed: {err.decode(errors='replace').strip().splitlines()[-1:]}")
    if count == 0:
        raise AnimationError("no frame to write")
    return count
