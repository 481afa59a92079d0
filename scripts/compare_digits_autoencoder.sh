#!/usr/bin/env bash
# Loss comparison: squared vs absolute pixel error for an autoencoder that regenerates the digits.
# Every loss is trained from the same initial weights and data order; then its PCA-plane
# trajectory, 2D and 1D filter-normalized landscapes (same direction seed), the table
# OUT/summary.md (.csv) and the figures OUT/figures/*.pdf|png. Re-running resumes: finished
# trainings and surfaces are reused; tables and figures are redrawn only when something changed.
#
#   scripts/compare_digits_autoencoder.sh [OUT_DIR]      (default runs/compare_digits_autoencoder)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/compare_digits_autoencoder}"
landscape compare configs/compare_digits_autoencoder.toml --out "$out"
