"""The ``vllm`` scoring backend: after training, the merged model is saved to a temporary folder
and vLLM scores each row by the log-probabilities of the two label tokens at the cue position.

One request per row, ``max_tokens=1`` with ``logprobs=k`` (extra ``vllm_logprobs``, default 20): the
top-k log-probabilities of the next token, read for the two label tokens, as the reference does. No
prompt log-probabilities (those cost a full-vocabulary softmax at every prompt position). A row
whose label tokens are not both in its top k (rare after training: they are the two answers the
model was tuned to give) is scored again exactly, each label appended, with ``prompt_logprobs=0``.
P(class 1) = softmax over the two label log-probabilities, which equals the hf backend's softmax
over the two label logits (the normaliser cancels).

Only merged, unquantized weights are handed over: a LoRA-wrapped or 4-bit model is refused (the
engine scores those on hf instead).

UNVERIFIED: written against vLLM's documented offline API (``LLM``, ``SamplingParams``,
``vllm.inputs.TokensPrompt``, ``CompletionOutput.logprobs``, ``RequestOutput.prompt_logprobs``)
but never run here: no GPU. ``bench/gpu_check.py`` exercises it where vLLM imports.
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


def _logprob(entry: Any, token_id: int) -> float | None:
    """The log-probability of ``token_id`` in one position's {token id: Logprob} map, or None."""
    if not entry or token_id not in entry:
        return None
    item = entry[token_id]
    return float(getattr(item, "logprob", item))


def two_label_prob(lp_a: float, lp_b: float) -> float:
    """P(class 1) = softmax([lp_a, lp_b])[1]."""
    return 1.0 / (1.0 + math.exp(lp_a - lp_b))


def mergeable_lm(scorer: Any) -> Any:
    """The plain transformers model vLLM may load; refuses an unmerged adapter or quantized weights."""
    from core.engine.hf_backend import is_quantized

    lm = scorer.lm
    if hasattr(lm, "get_base_model") or any(hasattr(m, "lora_A") for m in lm.modules()):
        raise RuntimeError("vLLM scoring needs merged weights, but the LoRA adapter is still attached")
    if is_quantized(lm):
        raise RuntimeError("vLLM scoring refuses a 4-bit (load_in_4bit) model: score it on hf")
    return lm


def score_with_vllm(
    loaded: Any, pred_seqs: dict[str, list[list[int]]], cfg: RunConfig, log: Callable[[str], None]
) -> dict[str, np.ndarray]:
    """P(class 1) per row for every set, via vLLM on the merged model. UNVERIFIED."""
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    scorer = loaded.module
    label_a, label_b = (int(x) for x in scorer.label_ids.tolist())
    lm = mergeable_lm(scorer)
    k = max(2, int(cfg.extra.get("vllm_logprobs", 20)))
    with tempfile.TemporaryDirectory(prefix="w2s-vllm-") as folder:
        lm.save_pretrained(folder)
        if loaded.tokenizer is not None:
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
            max_logprobs=k,
            gpu_memory_utilization=float(cfg.extra.get("vllm_gpu_memory_utilization", 0.85)),
            enforce_eager=bool(cfg.extra.get("vllm_enforce_eager", False)),
            skip_tokenizer_init=loaded.tokenizer is None,
            seed=cfg.seed,
        )
        params = SamplingParams(max_tokens=1, temperature=0.0, logprobs=k, detokenize=False)
        exact = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0, detokenize=False)
        out: dict[str, np.ndarray] = {}
        for name, seqs in pred_seqs.items():
            prompts = [TokensPrompt(prompt_token_ids=list(s)) for s in seqs]
            results = llm.generate(prompts, params, use_tqdm=False) if prompts else []
            probs = np.zeros(len(seqs), dtype=np.float64)
            missing: list[int] = []
            for i, res in enumerate(results):
                top = res.outputs[0].logprobs[0] if res.outputs and res.outputs[0].logprobs else None
                lp_a, lp_b = _logprob(top, label_a), _logprob(top, label_b)
                if lp_a is None or lp_b is None:
                    missing.append(i)
                else:
                    probs[i] = two_label_prob(lp_a, lp_b)
            if missing:
                again = [TokensPrompt(prompt_token_ids=list(seqs[i]) + [lab]) for i in missing
                         for lab in (label_a, label_b)]
                res2 = llm.generate(again, exact, use_tqdm=False)
                for j, i in enumerate(missing):
                    lp_a = _logprob(res2[2 * j].prompt_logprobs[-1], label_a)
                    lp_b = _logprob(res2[2 * j + 1].prompt_logprobs[-1], label_b)
                    if lp_a is None or lp_b is None:
                        raise RuntimeError("vLLM returned no prompt logprob for a label token")
                    probs[i] = two_label_prob(lp_a, lp_b)
            out[name] = probs
            log(f"vllm scored {len(seqs)} rows of {name} ({len(missing)} rescored: labels outside top {k})")
        del llm
        gc.collect()
        return out
