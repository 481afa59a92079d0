#!/usr/bin/env bash
# The quickstart figures: digits + a small MLP, trained, then its loss landscape along two
# random filter-normalized directions, a 1D slice, and the PCA plane of the optimizer path with
# the path drawn over it (Li et al. 2018, Figs. 1, 5 and 9 in miniature), and the checks of
# `landscape check` (docs/CHECKS.md). A few minutes on 2 CPU cores; re-running resumes every
# stage and only redraws the figures.
#
# Then the trajectory check's failing case, OUT_DIR_fast: the same job trained faster (lr 0.1 for
# 12 epochs, the quickstart before), whose checkpoints of epochs 4 and 6 leave the PCA plane;
# OUT_DIR_fast/figures/check_trajectory.png circles them (docs/img/check_trajectory_fast.png).
#
#   scripts/fig_quickstart.sh [OUT_DIR]      (default runs/quickstart)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/quickstart}"
landscape run configs/quickstart.toml --out "$out"
landscape run configs/quickstart.toml --out "${out}_fast" --set train.lr=0.1 --set train.epochs=12 \
    --set 'plot.kinds=["trajectory"]' --set 'plot.formats=["png"]'
