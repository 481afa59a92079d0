"""The parts of ``landscape hessian`` beyond eigenvalues: the trace estimator, the SLQ density, the
per-block results, their report entries, figures and terminal lines (issue 23).

The numerics are in :mod:`landscape.engine.slq`, :mod:`landscape.engine.blocks` and
:mod:`landscape.engine.operators`; this module maps the ``[hessian]`` config onto them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from landscape.config import HessianConfig
from landscape.engine.blocks import BlockResult, block_curvature, block_groups
from landscape.engine.hessian import HessianProblem
from landscape.engine.progress import bar
from landscape.engine.slq import Density
from landscape.figures.curvature import blocks_figure, density_figure
from landscape.figures.save import save_figure

OPERATOR_WORDS = {"hessian": "Hessian", "ggn": "Gauss-Newton matrix", "fisher": "empirical Fisher"}


def blocks_of(problem: HessianProblem, h: HessianConfig, prefix: str = "") -> list[BlockResult]:
    """Per diagonal block (``hessian.blocks``): top eigenvalue, trace, and density when asked."""
    if not h.blocks:
        return []
    groups = block_groups(problem.names, h.blocks, prefix)
    out: list[BlockResult] = []
    with bar(len(groups), "blocks", unit="block") as pbar:
        for group in groups:
            out += block_curvature(problem, [group], tol=h.tol, max_iter=h.max_iter, trace_method=h.trace,
                                   trace_samples=h.trace_samples, seed=h.seed,
                                   density=(h.density_runs, h.density_steps) if h.density else None)
            pbar.update(1)
    return out


def density_report(d: Density) -> dict[str, Any]:
    return {"nodes": list(d.nodes), "weights": list(d.weights), "runs": d.runs, "steps": d.steps,
            "trace": d.trace, "trace_stderr": d.trace_stderr, "hvps": d.hvps, "seconds": d.seconds}


def report_extras(density: Density | None, blocks: Sequence[BlockResult], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if density is not None:
        out["density"] = density_report(density)
    if blocks:
        out["blocks"] = [{"name": b.name, "names": [n.removeprefix(prefix) for n in b.names], "dim": b.dim,
                          "top_eigenvalue": b.top.eigenvalues[0], "converged": b.top.converged[0],
                          "trace": b.trace.estimate if b.trace else None,
                          "trace_stderr": b.trace.stderr if b.trace else None, "hvps": b.hvps,
                          **({"density": density_report(b.density)} if b.density else {})} for b in blocks]
    return out


def write_figures(report: Mapping[str, Any], out: str | Path) -> list[str]:
    """``<out stem>.density.png`` (the ESD, top eigenvalues marked) and ``<out stem>.blocks.png``."""
    stem = Path(out).with_suffix("")
    written: list[str] = []
    what = f"{OPERATOR_WORDS[report['operator']]} of {report['settings']['loss']}"
    if report.get("density"):
        d = report["density"]
        fig = density_figure(d["nodes"], d["weights"], report["eigenvalues"],
                             title=f"{what}: spectral density\n(SLQ, {d['runs']} runs × {d['steps']} steps; Gaussian smoothing)")
        written += [str(p) for p in save_figure(fig, f"{stem}.density", formats=("png",))]
    if report.get("blocks"):
        b = report["blocks"]
        fig = blocks_figure([r["name"] for r in b], [r["top_eigenvalue"] for r in b], [r["trace"] for r in b],
                            [r["trace_stderr"] for r in b],
                            [(r["density"]["nodes"], r["density"]["weights"]) if "density" in r else None for r in b],
                            title=f"{what} per block")
        written += [str(p) for p in save_figure(fig, f"{stem}.blocks", formats=("png",))]
    return written


def format_extras(report: Mapping[str, Any]) -> list[str]:
    """Terminal lines for the density and the per-block table."""
    lines = []
    if report.get("density"):
        d = report["density"]
        lines.append(f"density (SLQ, {d['runs']} runs × {d['steps']} steps, {d['hvps']} HVPs): support "
                     f"[{min(d['nodes']):.6g}, {max(d['nodes']):.6g}], P·Σwλ = {d['trace']:.6g} ± {d['trace_stderr']:.2g}")
    if report.get("blocks"):
        width = max(len(r["name"]) for r in report["blocks"])
        lines.append(f"{'block':<{width}}  {'P':>10}  {'λmax':>12}  {'trace':>12}  {'± stderr':>10}")
        for r in report["blocks"]:
            tr = "n/a" if r["trace"] is None else f"{r['trace']:.6g}"
            se = "" if r["trace_stderr"] is None else f"{r['trace_stderr']:.2g}"
            lines.append(f"{r['name']:<{width}}  {r['dim']:>10,}  {r['top_eigenvalue']:>12.6g}  {tr:>12}  {se:>10}")
    return lines
