#!/usr/bin/env bash
# Loss comparison: binary cross-entropy vs squared error vs hinge on digits 3 vs 8 (one output).
# Every loss is trained from the same initial weights and data order; then its PCA-plane
# trajectory, 2D and 1D filter-normalized landscapes (same direction seed), the table
# OUT/summary.md (.csv) and the figures OUT/figures/*.pdf|png. Re-running resumes: finished
# trainings and surfaces are reused; tables and figures are redrawn only when something changed.
#
#   scripts/compare_digits_binary.sh [OUT_DIR]      (default runs/compare_digits_binary)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/compare_digits_binary}"
landscape compare configs/compare_digits_binary.toml --out "$out"
