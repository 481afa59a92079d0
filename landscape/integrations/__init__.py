"""Where researchers already train: callbacks for Lightning and the Hugging Face Trainer, figures
logged to TensorBoard, Weights & Biases or a CSV logger, and results that display themselves in
Jupyter.

Nothing here is imported with ``landscape`` except :mod:`landscape.integrations.logging` and
:mod:`landscape.integrations.notebook`, which import no framework at module level: ``lightning``,
``transformers``, ``tensorboard`` and ``wandb`` are imported only when a callback or a logger asks
for them (the ``lightning``, ``hf``, ``tensorboard`` and ``wandb`` extras). See docs/INTEGRATIONS.md.
"""
