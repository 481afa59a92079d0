#!/usr/bin/env bash
# Run test files several times in a row, the last ones beside CPU-heavy processes, and log each run.
#
#   bash scripts/repeat_tests.sh RUNS LOADED [pytest arguments ...]
#   bash scripts/repeat_tests.sh 10 5 tests/test_reliability.py tests/test_distributed.py
#
# Runs 1..RUNS-LOADED run alone; the last LOADED runs each start BURNERS busy loops (default 1;
# python -c "while True: pass") first and stop them afterwards, so the tests share the CPU with
# processes that never sleep. Each run is a fresh `python -m pytest` (the
# default selection unless the arguments say otherwise). One line per run goes to stdout and to
# repeat_tests.log: run number, load, exit code, pytest's summary line, wall seconds. The script
# stops at the first failing run and exits with its code; 0 means every run passed.
set -u
runs=${1:?usage: repeat_tests.sh RUNS LOADED [pytest args]}
loaded=${2:?usage: repeat_tests.sh RUNS LOADED [pytest args]}
shift 2
py=${PYTHON:-python}
log=${LOG:-repeat_tests.log}
cores=$(nproc)
nburn=${BURNERS:-1}
burners=()
stop_burners() { for pid in "${burners[@]}"; do kill "$pid" 2>/dev/null; done; burners=(); }
trap stop_burners EXIT
echo "# $(date -u +%FT%TZ) $runs runs of: pytest $*; the last $loaded beside $nburn busy loop(s); $cores cores" | tee -a "$log"
for ((i = 1; i <= runs; i++)); do
  load="alone"
  if ((i > runs - loaded)); then
    for ((c = 0; c < nburn; c++)); do "$py" -c "while True: pass" & burners+=($!); done
    load="beside $nburn busy loop(s)"
  fi
  start=$(date +%s%N)
  out=$("$py" -m pytest -q -p no:cacheprovider "$@" 2>&1)
  rc=$?
  stop_burners
  ms=$((($(date +%s%N) - start) / 1000000))
  summary=$(echo "$out" | tail -n 1)
  printf 'run %2d/%d  %-24s rc=%d  %s  (%d.%03d s wall)\n' "$i" "$runs" "$load" "$rc" "$summary" $((ms / 1000)) $((ms % 1000)) | tee -a "$log"
  if ((rc != 0)); then
    echo "$out" | tail -n 60
    exit "$rc"
  fi
done
