"""A Hugging Face model built from a checkpoint folder's ``config.json``, locally (the ``hf`` extra).

The class is the first of ``config.json``'s ``architectures`` that ``transformers`` knows
(``GPT2LMHeadModel``, ``BertForSequenceClassification``, ...), else ``AutoModel``'s choice for the
``model_type``. Weights come from the checkpoint afterwards; nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from landscape.errors import MissingExtraError, ModelError, install_hint

HF_MODEL = "hf"  # the model name (--model hf) that means: build it from the checkpoint's config.json


def model_from_hf_config(config: Mapping[str, Any], where: str) -> nn.Module:
    """A freshly initialised model of the architecture ``config`` (a parsed config.json) describes."""
    try:
        import transformers
    except ImportError as err:
        raise MissingExtraError(f"building the model of {where!r} from its config.json needs transformers: {install_hint('hf')}") from err
    settings = dict(config)
    model_type = settings.pop("model_type", None)
    if not isinstance(model_type, str):
        raise ModelError(f"the config.json of {where!r} names no model_type, so transformers cannot tell the architecture")
    try:
        cfg = transformers.AutoConfig.for_model(model_type, **settings)
    except (ValueError, KeyError, TypeError) as err:
        raise ModelError(f"transformers {transformers.__version__} cannot read the config.json of {where!r}: {err}") from err
    names = [a for a in cfg.architectures or [] if isinstance(getattr(transformers, a, None), type)]
    try:
        model = getattr(transformers, names[0])(cfg) if names else transformers.AutoModel.from_config(cfg)  # type: ignore[no-untyped-call]
    except Exception as err:  # transformers' own code: any failure becomes one line
        raise ModelError(f"building {names[0] if names else model_type!r} from the config.json of {where!r} failed: "
                         f"{type(err).__name__}: {err}") from err
    if not isinstance(model, nn.Module):
        raise ModelError(f"{where!r}: transformers built a {type(model).__name__}, not a torch module")
    return model.eval()
