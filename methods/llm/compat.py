"""Third-party differences the LLM methods must bridge, one line of reason each.

transformers 5.24 renamed the key/value cache argument and output field of its models from
`past_key_values` to `cache` (the old name still works there, with a warning); 5.17 (the GPU
image's) knows only `past_key_values`. Delete this when every supported version has `cache`.
"""

from __future__ import annotations

import inspect


def cache_name() -> str:
    from transformers.models.llama.modeling_llama import LlamaModel

    return "cache" if "cache" in inspect.signature(LlamaModel.forward).parameters else "past_key_values"


CACHE = cache_name()
