"""The ``vllm`` scoring backend: after training, the merged model is saved to a temporary folder
and vLLM scores each row by the log-probabilities of the two label tokens at the cue position.

Each row is sent twice, once followed by each label token, with ``prompt_logprobs=0`` (vLLM then
returns the log-probability of every actual prompt token); prefix caching makes the second copy
nearly free. P(class 1) = softmax over the two label log-probabilities, which equals the hf
backend's softmax over the two label logits (the normaliser cancels).

UNVERIFIED: written against vLLM's documented offline API (``LLM``, ``SamplingParams``,
``vllm.inputs.TokensPrompt``, ``RequestOutput.prompt_logprobs``) but never run here: no GPU.
"""

from __future__ import annotations

import gc
import math
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from core.common.config import RunConfig


def _label_logprob(entry: dict[int, Any] | None, token_id: int) -> float:
    if not entry or token_id not in entry:
        raise RuntimeError("vLLM returned no prompt logprob for the label token")
    item = entry[token_id]
    return float(getattr(item, "logprob", item))


def score_with_vllm(
    loaded: Any, pred_seqs: dict[str, list[list[int]]], cfg: RunConfig, log: Callable[[str], None]
) -> dict[str, np.ndarray]:
    """P(class 1) per row for every set, via vLLM on the merged model. UNVERIFIED."""
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    scorer = loaded.module
    label_a, label_b = (int(x) for x in scorer.label_ids.tolist())
    lm = scorer.lm.get_base_model() if hasattr(scorer.lm, "get_base_model") else scorer.lm
    with tempfile.TemporaryDirectory(prefix="w2s-vllm-") as folder:
        lm.save_pretrained(folder)
        loaded.tokenizer.save_pretrained(folder)
        scorer.to("cpu")  # hand the GPU memory to vLLM
        del lm
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        longest = max((len(s) for seqs in pred_seqs.values() for s in seqs), default=1)
        llm = LLM(
            model=folder,
            dtype="bfloat16" if loaded.dtype == torch.bfloat16 else "auto",
            enable_prefix_caching=True,
            max_model_len=longest + 1,
            gpu_memory_utilization=float(cfg.extra.get("vllm_gpu_memory_utilization", 0.85)),
            seed=cfg.seed,
        )
        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        out: dict[str, np.ndarray] = {}
        for name, seqs in pred_seqs.items():
            prompts = [TokensPrompt(prompt_token_ids=s + [lab]) for s in seqs for lab in (label_a, label_b)]
            results = llm.generate(prompts, params, use_tqdm=False) if prompts else []
            probs = np.zeros(len(seqs), dtype=np.float64)
            for i in range(len(seqs)):
                lp_a = _label_logprob(results[2 * i].prompt_logprobs[-1], label_a)
                lp_b = _label_logprob(results[2 * i + 1].prompt_logprobs[-1], label_b)
                probs[i] = 1.0 / (1.0 + math.exp(lp_a - lp_b))
            out[name] = probs
            log(f"vllm scored {len(seqs)} rows of {name}")
        del llm
        gc.collect()
        return out
