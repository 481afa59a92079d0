#!/usr/bin/env bash
# Mode connectivity on the digits MLP (docs/CONNECT.md): two runs of configs/digits_mlp.toml from
# seeds 1 and 2, then the straight line between them, the line to the second one with its hidden
# units permuted to match the first (weight matching), and a trained quadratic Bezier curve
# (Garipov et al. 2018), with barriers and figures. A few minutes on 2 CPU cores; re-running
# resumes every stage.
#
#   scripts/fig_connect_digits.sh [OUT_DIR]      (default runs/connect_digits)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-runs/connect_digits}"
landscape train configs/digits_mlp.toml --out "$out/seed1" --seed 1
landscape train configs/digits_mlp.toml --out "$out/seed2" --seed 2
landscape connect "$out/seed1/checkpoints/epoch_020.pt" "$out/seed2/checkpoints/epoch_020.pt" \
    --out "$out/connect" --curve bezier --align weights
