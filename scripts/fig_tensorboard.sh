#!/usr/bin/env bash
# The TensorBoard screenshot of docs/INTEGRATIONS.md: a digits MLP trained 60 steps with a Recorder,
# its trajectory plane logged by landscape.log_figures to a SummaryWriter, TensorBoard served on
# localhost, and the Images tab taken by headless Chromium (Debian: apt-get install chromium).
#   bash scripts/fig_tensorboard.sh [OUT.png]     (needs the tensorboard extra)
set -euo pipefail
out=$(realpath -m "${1:-docs/img/integrations_tensorboard.png}")
work=$(mktemp -d)
trap 'kill "${tb:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$work"
python - <<'PY'
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.tensorboard import SummaryWriter

import landscape

(x, y), _ = landscape.dataset("digits")
torch.manual_seed(0)
model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
opt = torch.optim.SGD(model.parameters(), lr=0.5)
rec = landscape.Recorder("run", every=1)
for step in range(61):
    if step % 10 == 0:
        rec.save(model, step=step)  # steps 0, 10, ..., 60: the last one is the model drawn
    if step < 60:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
t = landscape.trajectory("run")
s = landscape.surface(model, (x, y), loss="cross_entropy", directions=t, progress=False)
with SummaryWriter("logs/digits") as writer:
    print(landscape.log_figures(s, writer, trajectory=t, step=60))
PY
tensorboard --logdir logs --host 127.0.0.1 --port 6123 >tb.log 2>&1 &
tb=$!
for _ in $(seq 60); do curl -sf -o /dev/null http://127.0.0.1:6123/ && break; sleep 1; done
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1100,620 --virtual-time-budget=20000 \
  --screenshot="$out" "http://127.0.0.1:6123/?darkMode=false#images" 2>/dev/null
echo "wrote $out"
