#!/usr/bin/env bash
# Reproduce the findings of Li et al. (2018) on the built-in digits: docs/REPRODUCTION.md and
# docs/img/repro/*.png. About half an hour on 2 idle CPU cores; each stage resumes when rerun.
#
#   bash scripts/reproduce_paper.sh                 # the reduced-scale reproduction into docs/
#   bash scripts/reproduce_paper.sh --mini OUTDIR   # tiny models and grids (CI: checks the pipeline only)
#   bash scripts/reproduce_paper.sh --depths 20,56,110   # extra options go to scripts/reproduce_paper.py
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
py="${PYTHON:-python}"
if [[ "${1:-}" == "--mini" ]]; then
    out="${2:?usage: reproduce_paper.sh --mini OUTDIR}"
    shift 2
    exec "$py" "$here/reproduce_paper.py" --mini --out "$out" "$@"
fi
exec "$py" "$here/reproduce_paper.py" --out "$root/docs" "$@"
