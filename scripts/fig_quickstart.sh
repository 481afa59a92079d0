#!/usr/bin/env bash
# The quickstart figures: digits + a small MLP, trained, then its loss landscape along two
# random filter-normalized directions, a 1D slice, and the PCA plane of the optimizer path with
# the path drawn over it (Li et al. 2018, Figs. 1, 5 and 9 in miniature). A few minutes on 2 CPU
# cores; re-running resumes every stage and only redraws the figures.
#
#   scripts/fig_quickstart.sh [OUT_DIR]      (default runs/quickstart)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/quickstart}"
landscape run configs/quickstart.toml --out "$out"
