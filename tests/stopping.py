"""A batch-loss file for interruption tests: ``loss(model, batch)`` is cross-entropy, and raises
KeyboardInterrupt at its N-th call once the environment variable ``env`` is N (counted from the
moment the variable was set), as Ctrl-C in the middle of a pass over the data would."""


def stopping_loss_file(env: str, inputs: str, targets: str) -> str:
    """The file's text; ``inputs``/``targets`` are how a batch gives them (``batch[0]``, ``batch["labels"]``)."""
    return f'''
import os
import torch.nn.functional as F

state = {{"stop": "", "calls": 0}}

def loss(model, batch):
    stop = os.environ.get("{env}", "")
    if stop != state["stop"]:  # counted from the moment the variable was set
        state.update(stop=stop, calls=0)
    state["calls"] += 1
    if stop and state["calls"] == int(stop):
        raise KeyboardInterrupt
    return F.cross_entropy(model({inputs}), {targets}, reduction="none")
'''
