"""``landscape info``: describe any file the tool reads or writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py

from landscape.engine.directions import plain_attr
from landscape.errors import ConfigError, LandscapeError
from landscape.io.foreign import is_hf_folder
from landscape.io.run_folder import MANIFEST, RunFolder


def _checkpoint(path: Path, unsafe: bool) -> dict[str, Any]:
    from landscape.io.checkpoint import load_checkpoint, sha256_file
    from landscape.workflows.experiment import checkpoint_config

    ckpt = load_checkpoint(path, unsafe=unsafe)
    n_params = sum(int(t.numel()) for t in ckpt.state_dict.values() if t.is_floating_point())
    out: dict[str, Any] = {"file": str(path), "type": "checkpoint", "format": "landscape" if ckpt.is_ours else "foreign",
                           "sha256": sha256_file(path), "tensors": len(ckpt.state_dict), "float_values": n_params}
    config = checkpoint_config(ckpt)
    if config is not None:
        out.update(model=config.model.name, model_options=config.model.options, data=config.data.name,
                   loss=config.train.loss, epoch=ckpt.epoch, step=ckpt.step, metrics=ckpt.metrics,
                   input_shape=ckpt.extra.get("input_shape"), output_shape=ckpt.extra.get("output_shape"),
                   data_sha256=ckpt.extra.get("data_sha256"))
    else:
        if ckpt.extra.get("kind") == "record":  # saved by landscape.Recorder from the user's own loop
            out.update(format="recorded (landscape.Recorder)", model_class=ckpt.extra.get("model_class"),
                       epoch=ckpt.epoch, step=ckpt.step, metrics=ckpt.metrics)
        elif ckpt.extra.get("kind") in ("lightning", "huggingface", "safetensors"):
            hf = ckpt.extra.get("hf_config") or {}
            out.update(format=ckpt.extra["kind"], epoch=ckpt.epoch, step=ckpt.step,
                       **({"model_type": hf.get("model_type"), "architectures": hf.get("architectures")} if hf else {}))
        out["first_tensors"] = {k: list(v.shape) for k, v in list(ckpt.state_dict.items())[:8]}
    return out


def _run_dir(path: Path) -> dict[str, Any]:
    try:
        manifest = RunFolder(path).manifest() or {}
        ckpts = manifest.get("checkpoints", [])
        cfg = manifest.get("config", {})
        return {"file": str(path), "type": "run", "status": manifest.get("status"), "checkpoints": len(ckpts),
                "model": cfg.get("model", {}).get("name"), "data": cfg.get("data", {}).get("name"),
                "loss": cfg.get("train", {}).get("loss"), "last": ckpts[-1] if ckpts else None}
    except (ConfigError, OSError, UnicodeDecodeError, ValueError, AttributeError, TypeError, KeyError, IndexError) as err:
        raise LandscapeError(f"{str(path / 'run.json')!r} is not a readable run manifest: {type(err).__name__}: {err}") from err


def _h5(path: Path) -> dict[str, Any]:
    try:
        with h5py.File(path, "r") as f:
            fmt = f.attrs.get("format")
            is_trajectory = "trajectory" in f
    except OSError as err:
        raise LandscapeError(f"{str(path)!r} is not a readable HDF5 file: {err}") from err
    if fmt == "landscape-connect":
        return _connect(path)
    if fmt == "landscape-surface":
        from landscape.figures.estimates import progressive_summary
        from landscape.io.surface_file import read_surface
        from landscape.workflows.surface import summarize

        sf = read_surface(path)
        out = summarize(sf)
        out.update(type="surface", metrics=sf.columns, x=[float(sf.grid.x[0]), float(sf.grid.x[-1]), len(sf.grid.x)],
                   x_label=sf.attrs.get("x_label"), directions=sf.attrs.get("directions", {}),
                   settings=sf.attrs["settings"], landscape_version=sf.attrs.get("landscape_version"))
        if sf.grid.y is not None:
            out.update(y=[float(sf.grid.y[0]), float(sf.grid.y[-1]), len(sf.grid.y)], y_label=sf.attrs.get("y_label"))
        progressive = progressive_summary(sf)  # None for an exact file
        if progressive is not None:
            out["progressive"] = progressive
        return out
    try:
        with h5py.File(path, "r") as f:
            groups = sorted(f.keys())
            attrs = {k: plain_attr(v) for k, v in f.attrs.items()}
            out = {"file": str(path), "type": "trajectory" if is_trajectory else "directions", "groups": groups,
                   "attributes": {k: v for k, v in attrs.items() if k != "model_fingerprint"}}
            if "x" in f:
                out["tensors"] = len(f["x"])
            if is_trajectory:
                t = f["trajectory"]
                out["checkpoints"] = len(t["coords"])
                out["epochs"] = [int(e) for e in t["epoch"][()]]
    except (OSError, KeyError, ValueError, TypeError, AttributeError) as err:  # a damaged or foreign layout
        raise LandscapeError(f"{str(path)!r} is an HDF5 file this tool cannot describe: {type(err).__name__}: {err}") from err
    return out


def _connect(path: Path) -> dict[str, Any]:
    from landscape.io.connect_file import read_connect

    cf = read_connect(path)
    return {"file": str(path), "type": "connect", "paths": cf.paths, "metrics": cf.columns,
            "t": [float(cf.t[0]), float(cf.t[-1]), len(cf.t)],
            "done": {p: f"{int(cf.done[p].sum())}/{len(cf.t)}" for p in cf.paths}, "bends": len(cf.bends),
            "barriers": {k[len("barrier_"):]: v for k, v in cf.attrs.items() if k.startswith("barrier_")},
            "settings": cf.attrs["settings"], "landscape_version": cf.attrs.get("landscape_version")}


def describe(path: str | Path, unsafe: bool = False) -> dict[str, Any]:
    p = Path(path)
    if not p.exists():
        raise LandscapeError(f"{str(p)!r} does not exist")
    if is_hf_folder(p):
        return _checkpoint(p, unsafe)
    if p.is_dir():
        if not RunFolder(p).manifest_path.exists():
            raise LandscapeError(f"{str(p)!r} is a folder without {MANIFEST}: not a run folder")
        return _run_dir(p)
    with p.open("rb") as fh:
        magic = fh.read(8)
    if magic == b"\x89HDF\r\n\x1a\n":
        return _h5(p)
    return _checkpoint(p, unsafe)
