"""``landscape.log_figures``: a surface's figures (or a run's PNGs) sent to an experiment logger.

Loggers, recognised by what they are (no framework is imported here until one is used):

- a TensorBoard ``SummaryWriter`` (``torch.utils.tensorboard``, the ``tensorboard`` package):
  ``add_image`` per figure, tag ``<tag>/<name>``, at ``step``;
- a Weights & Biases run (``wandb.init()``, offline mode too): one ``run.log`` of ``wandb.Image``
  per figure at the run's own step (W&B refuses steps that go back);
- a Lightning logger: its ``experiment`` when that is one of the two above (``TensorBoardLogger``,
  ``WandbLogger``); any other (``CSVLogger``) gets the figures' file paths through
  ``log_hyperparams({"landscape_figures": {tag: path}})`` (in its ``hparams.yaml``).

Images are the figures rendered as PNG (RGB, ``dpi`` dots per inch), so what a logger shows is
what ``landscape plot`` saves.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from landscape.errors import ConfigError, LandscapeError

Image = np.ndarray  # (height, width, 3) uint8, RGB


def figure_image(fig: Figure, dpi: int = 100) -> Image:
    """``fig`` rendered as PNG and read back: (height, width, 3) uint8, ``figsize × dpi`` pixels."""
    from matplotlib.image import imread

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    buf.seek(0)
    return _rgb(imread(buf, format="png"))


def _rgb(array: np.ndarray) -> Image:
    """A PNG as imread returns it (float in [0, 1] or uint8; gray, RGB or RGBA) → (h, w, 3) uint8."""
    a = np.asarray(array)
    if a.dtype != np.uint8:
        a = np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    return np.ascontiguousarray(a[:, :, :3])


def surface_figures(s: Any, trajectory: Any = None, metric: str = "train_loss") -> dict[str, Figure]:
    """The figures a :class:`landscape.Surface` gets: ``contour`` (2D) or ``line`` (1D), and
    ``trajectory`` (the path over the contours) when a trajectory of the same plane is given."""
    from landscape.api.surface import plot
    from landscape.figures.views import resolve_metric

    chosen = resolve_metric(s.columns, metric, "the surface")
    if s.y is None:
        return {"line": plot(s, "line", metric=chosen)}  # type: ignore[dict-item]
    figs: dict[str, Figure] = {"contour": plot(s, "contour", metric=chosen)}  # type: ignore[dict-item]
    if trajectory is not None:
        figs["trajectory"] = plot(s, "trajectory", metric=chosen, trajectory=trajectory)  # type: ignore[assignment]
    return figs


def _sources(source: Any, trajectory: Any, metric: str, dpi: int) -> dict[str, tuple[Image, Path | None]]:
    """name → (image, the PNG file it came from or None) for every figure of ``source``."""
    from matplotlib.image import imread

    from landscape.api.surface import Surface, load_surface

    if isinstance(source, str | Path) and Path(source).is_file():
        source = load_surface(source)
    if isinstance(source, str | Path):
        if not Path(source).is_dir():
            raise ConfigError(f"log_figures: {str(source)!r} is neither a surface file nor a folder")
        folder = Path(source)  # a run folder's figures/*.png, or the folder's own *.png
        pngs = sorted((folder / "figures" if (folder / "figures").is_dir() else folder).glob("*.png"))
        if not pngs:
            raise ConfigError(f"{str(folder)!r} holds no PNG figures (in figures/ or in the folder itself)")
        return {p.stem: (_rgb(imread(p)), p) for p in pngs}
    if isinstance(source, Surface):
        source = surface_figures(source, trajectory, metric)
    if isinstance(source, Mapping) and source and all(isinstance(f, Figure) for f in source.values()):
        return {str(name): (figure_image(fig, dpi), None) for name, fig in source.items()}
    raise ConfigError("log_figures takes a Surface, a surface file, a run folder of PNG figures or a "
                      f"{{name: Figure}} dict, got {type(source).__name__}")


# --- the loggers -----------------------------------------------------------------------------------------------


def _to_tensorboard(writer: Any, images: Mapping[str, tuple[Image, Path | None]], tag: str, step: int) -> None:
    for name, (img, _) in images.items():
        writer.add_image(f"{tag}/{name}", img, global_step=step, dataformats="HWC")
    writer.flush()


def _to_wandb(run: Any, images: Mapping[str, tuple[Image, Path | None]], tag: str, _step: int) -> None:
    import wandb

    run.log({f"{tag}/{name}": wandb.Image(img, caption=name) for name, (img, _) in images.items()})


def _to_files(logger: Any, images: Mapping[str, tuple[Image, Path | None]], tag: str, _step: int) -> None:
    """A logger that takes no images (Lightning's CSVLogger): the PNG files' paths as hyperparameters."""
    from matplotlib.image import imsave

    paths: dict[str, str] = {}
    for name, (img, path) in images.items():
        if path is None:  # a figure drawn in memory: written beside the logger's own files
            folder = getattr(logger, "log_dir", None) or getattr(logger, "save_dir", None)
            if not folder:
                raise ConfigError(f"log_figures: the {type(logger).__name__} has no log_dir to write figures into")
            path = Path(folder) / tag / f"{name}.png"
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                imsave(path, img)
            except OSError as err:
                raise LandscapeError(f"cannot write {str(path)!r}: {err.strerror or err}") from err
        paths[f"{tag}/{name}"] = str(path)
    logger.log_hyperparams({"landscape_figures": paths})
    logger.save()


def _writer_for(logger: Any) -> tuple[Callable[[Any, Mapping[str, tuple[Image, Path | None]], str, int], None], Any]:
    lightning = callable(getattr(logger, "log_hyperparams", None)) and hasattr(type(logger), "experiment")
    for target in (logger, logger.experiment) if lightning else (logger,):  # or a Lightning logger's experiment
        if callable(getattr(target, "add_image", None)) and callable(getattr(target, "flush", None)):  # a SummaryWriter
            return _to_tensorboard, target
        if type(target).__module__.split(".")[0] == "wandb" and callable(getattr(target, "log", None)):  # a wandb run
            return _to_wandb, target
    if lightning:
        return _to_files, logger
    raise ConfigError(f"log_figures cannot log to a {type(logger).__module__}.{type(logger).__name__}: give a "
                      "torch.utils.tensorboard.SummaryWriter, a wandb run or a Lightning logger")


def log_figures(source: Any, logger: Any, *, trajectory: Any = None, metric: str = "train_loss", step: int = 0,
                tag: str = "landscape", dpi: int = 100) -> dict[str, tuple[int, int]]:
    """Log a surface's figures (or a run's PNG figures) to TensorBoard, W&B or a Lightning logger.

    Args:
        source: a :class:`landscape.Surface` (drawn as ``contour``, or ``line`` in 1D, plus
            ``trajectory`` when ``trajectory`` is given), a surface file, a run folder (its
            ``figures/*.png``, e.g. ``landscape run``'s or a callback's), or a ``{name: Figure}`` dict.
        logger: a ``torch.utils.tensorboard.SummaryWriter``, a ``wandb`` run, or a Lightning logger
            (``TensorBoardLogger``, ``WandbLogger``; others such as ``CSVLogger`` get the PNG paths).
        trajectory: what :func:`landscape.trajectory` returned (or its file), drawn over a Surface's contours.
        metric: the column drawn from a Surface. step: the TensorBoard step (W&B uses its own).
        tag: the prefix of every tag (``landscape/contour``). dpi: pixels per inch of drawn figures.

    Returns:
        ``{"<tag>/<name>": (height, width)}`` of every image logged, in pixels.
    """
    write, target = _writer_for(logger)
    images = _sources(source, trajectory, metric, dpi)
    write(target, images, tag, step)
    return {f"{tag}/{name}": (int(img.shape[0]), int(img.shape[1])) for name, (img, _) in images.items()}


__all__ = ["figure_image", "log_figures", "surface_figures"]
