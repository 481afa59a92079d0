"""User files (--model/--data/--loss file.py:fn) that import the modules beside them, as a script would.

Run as a user runs it: the ``landscape`` console script in a subprocess, from another folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import pytest
import torch
from torch import nn

from landscape.zoo.registry import load_callable

REPO = Path(__file__).resolve().parents[1]

HELPERS_PY = '''
import torch
from torch import nn

class Block(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(n_in, 8), nn.Linear(8, n_out)

    def forward(self, x):
        return self.fc2(torch.tanh(self.fc1(x)))

def xy():
    g = torch.Generator().manual_seed(4)
    x, y = torch.randn(30, 5, generator=g), torch.randint(0, 3, (30,), generator=g)
    return (x[:20], y[:20]), (x[20:], y[20:])

def per_sample(out, y):
    return nn.functional.cross_entropy(out, y, reduction="none")
'''

FILES = {
    "helpers.py": HELPERS_PY,
    "mymodel.py": "from helpers import Block\n\ndef make(input_shape, output_shape):\n"
                  "    return Block(input_shape[0], output_shape[0])\n",
    "mydata.py": "from helpers import xy\n\ndef data():\n    return xy()\n",
    "myloss.py": "from helpers import per_sample\n\ndef loss(model, batch):\n    return per_sample(model(batch[0]), batch[1])\n",
}


def _command() -> list[str]:
    """The installed ``landscape`` script beside this Python, else ``python -m landscape``."""
    script = Path(sys.executable).parent / "landscape"
    found = shutil.which("landscape", path=str(script.parent))
    return [found] if found else [sys.executable, "-m", "landscape"]


def test_user_files_import_their_neighbours(tmp_path: Path) -> None:
    proj, elsewhere = tmp_path / "proj", tmp_path / "elsewhere"
    proj.mkdir()
    elsewhere.mkdir()
    for name, text in FILES.items():
        (proj / name).write_text(text)
    torch.manual_seed(9)
    net = nn.ModuleDict({"fc1": nn.Linear(5, 8), "fc2": nn.Linear(8, 3)})
    torch.save(net.state_dict(), proj / "net.pt")
    argv = [*_command(), "--quiet", "surface", "../proj/net.pt", "--model", "../proj/mymodel.py:make",
            "--data", "../proj/mydata.py:data", "--loss", "../proj/myloss.py:loss", "--x", "-1:1:3", "--out", "s.h5"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    run = subprocess.run(argv, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert run.returncode == 0, run.stderr
    g = torch.Generator().manual_seed(4)
    x, y = torch.randn(30, 5, generator=g)[:20].double(), torch.randint(0, 3, (30,), generator=g)[:20]
    w = {k: v.double() for k, v in net.state_dict().items()}
    out = torch.tanh(x @ w["fc1.weight"].T + w["fc1.bias"]) @ w["fc2.weight"].T + w["fc2.bias"]
    with h5py.File(elsewhere / "s.h5", "r") as f:
        assert float(f["train_loss"][1]) == pytest.approx(float(nn.functional.cross_entropy(out, y)), rel=1e-6)


def test_the_import_path_is_restored(tmp_path: Path) -> None:
    (tmp_path / "helpers.py").write_text(HELPERS_PY)
    (tmp_path / "mymodel.py").write_text(FILES["mymodel.py"])
    before = list(sys.path)
    try:
        make = load_callable(f"{tmp_path / 'mymodel.py'}:make")
        assert isinstance(make((5,), (3,)), nn.Module)
        assert sys.path == before
    finally:
        sys.modules.pop("helpers", None)
