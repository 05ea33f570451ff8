"""Zero-shot and few-shot claim scoring: what an *untrained* model believes about each row.

Unsupervised elicitation (``ideas/ue_zeroshot``, ``ideas/ue_fewshot``) labels ``train_unlabel``
with the pretrained strong model itself, before any training. A :class:`ClaimTemplate` says how:

- **causal LMs** (the real setting): the row is written into a prompt that ends in a cue, and
  P(class 1) is the softmax over the next-token logits of the two label words. The default
  templates are the reference sandbox's True/False claims, with its label words as it writes them
  (``False``/``True`` without a leading space after the binary cue, `` True``/`` False`` with one
  for preference pairs, where *True* means "Answer A is better": class 0). No chat template, as the
  reference scores base models. With ``demos``, each row's prompt is preceded by labelled
  demonstrations in the same template (few-shot).
- **encoders** (the offline demo's MiniLM) cannot continue a prompt. Their analogue is the
  pretrained sentence embedding: the judged text (a binary row's ``choice``; each answer of a
  preference pair) is compared by cosine similarity with the embeddings of two *label claims*
  (``This answer is wrong.`` / ``This answer is correct.``; for answers ``...unhelpful.`` /
  ``...helpful.``). For a pair, the better answer is the one nearer the positive claim. Demonstrations
  join the claims as prototypes: each class's prototype is the mean of its claim's embedding and the
  embeddings of the demonstrations labelled with that class (a nearest-class-mean classifier).
  The similarity margin is turned into P(class 1) with a logistic whose scale is the margin's
  spread over the rows scored together (label-free); only the order of the margins matters to the
  consistency fix and the balancing that follow.

Rows are never dropped: prompts longer than ``max_ctx`` lose tokens from the middle of their
longest fields (``core.engine.prompts``), the cue at the end is always kept.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from core.common.config import RunConfig
from core.data.datasets import Format
from core.engine.models import ModelSpec, resolve_model

Demos = Sequence[Sequence[tuple[dict[str, Any], int]]]  # per row: (demonstration row, its class)
LogFn = Callable[[str], None]

# The reference sandbox's zero-shot claims (w2s_research/core/data.py), word for word.
BINARY_CLAIM = (
    "Question: {question}\nProposed Answer: {choice}\nClaim: This answer is correct.\n"
    "I think this claim is (True or False):"
)
PREFERENCE_CLAIM = (
    "Question: {prompt}\nAnswer A: {first}\nAnswer B: {second}\n"
    "Claim: Answer A is more helpful than Answer B.\nI think this Claim is (True or False):"
)
DEMO_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class ClaimTemplate:
    """How rows become claims. ``prompt`` has ``{field}`` slots and ends at the cue;
    ``label_words`` = (class 0, class 1) exactly as they follow the cue (spacing included).
    Encoders use ``judged`` (the text compared: ``{choice}``; for pairs each of ``{first}`` and
    ``{second}``) and ``label_claims`` = (class 0 claim, class 1 claim); for pairs
    (worse-answer claim, better-answer claim)."""

    prompt: str
    label_words: tuple[str, str]
    judged: str = "{choice}"
    label_claims: tuple[str, str] = ("This answer is wrong.", "This answer is correct.")


REFERENCE_TEMPLATES: dict[str, ClaimTemplate] = {
    "binary": ClaimTemplate(BINARY_CLAIM, ("False", "True")),
    # class 0 = A preferred = the claim "A is more helpful" is True
    "preference": ClaimTemplate(
        PREFERENCE_CLAIM, (" True", " False"), "{answer}",
        ("This answer is unhelpful.", "This answer is helpful."),
    ),
}


def default_template(fmt: Format) -> ClaimTemplate:
    if fmt not in REFERENCE_TEMPLATES:
        raise ValueError(f"unknown format {fmt!r}")
    return REFERENCE_TEMPLATES[fmt]


def template_fields(text: str) -> list[str]:
    """The ``{field}`` names a template uses, in order."""
    return [name for _, name, _, _ in string.Formatter().parse(text) if name]


def render(text: str, row: dict[str, Any]) -> str:
    """The template filled with the row's fields; a missing field is a one-line ValueError."""
    missing = [f for f in template_fields(text) if f not in row]
    if missing:
        raise ValueError(f"claim template needs field {missing[0]!r}, which the rows do not have")
    return text.format(**{f: row[f] for f in template_fields(text)})


def template_segments(text: str, row: dict[str, Any]) -> list[tuple[str, bool]]:
    """(text, truncatable) pieces: literals fixed, field values truncatable. A literal's trailing
    spaces ride with the following value, so pieces tokenise as the whole string would (BPE
    tokenizers fold a leading space into the next word)."""
    out: list[tuple[str, bool]] = []
    carry = ""
    for literal, name, _, _ in string.Formatter().parse(text):
        literal = carry + literal
        carry = ""
        if name is None:
            if literal:
                out.append((literal, False))
            continue
        if name not in row:
            raise ValueError(f"claim template needs field {name!r}, which the rows do not have")
        stripped = literal.rstrip(" ")
        if stripped:
            out.append((stripped, False))
        out.append((literal[len(stripped):] + str(row[name]), True))
    if carry:
        out.append((carry, False))
    return out


def claim_segments(
    template: ClaimTemplate, row: dict[str, Any], demos: Sequence[tuple[dict[str, Any], int]] = ()
) -> list[tuple[str, bool]]:
    """A row's prompt, after its demonstrations (each: the filled template, its label word, a blank line)."""
    out: list[tuple[str, bool]] = []
    for demo, label in demos:
        out.extend(template_segments(template.prompt, demo))
        out.append((template.label_words[int(label)] + DEMO_SEPARATOR, False))
    out.extend(template_segments(template.prompt, row))
    return out


def claim_label_ids(tokenizer: Any, words: tuple[str, str]) -> tuple[int, int]:
    """First token of each label word as written (the reference reads ``encode(word)[0]``)."""
    ids = []
    for word in words:
        enc = tokenizer(word, add_special_tokens=False)["input_ids"]
        if not enc:
            raise ValueError(f"label word {word!r} encodes to no token")
        ids.append(int(enc[0]))
    if ids[0] == ids[1]:
        raise ValueError(f"label words {words} share their first token id {ids[0]}")
    return ids[0], ids[1]


def _logistic_by_spread(margin: np.ndarray) -> np.ndarray:
    """P(class 1) = sigmoid(margin / sd(margin)): a label-free scale, order preserved."""
    margin = np.asarray(margin, dtype=np.float64)
    sd = float(margin.std()) if len(margin) > 1 else 0.0
    z = margin / sd if sd > 1e-12 else np.zeros_like(margin)
    return 1.0 / (1.0 + np.exp(-z))


class CausalClaimScorer:
    """Next-token claim scoring on a causal LM (loaded once, scored many times)."""

    def __init__(self, lm: Any, tokenizer: Any, fmt: Format, template: ClaimTemplate, max_len: int,
                 device: torch.device, batch_size: int, spec: ModelSpec | None = None,
                 dtype: torch.dtype = torch.float32, vllm_cfg: RunConfig | None = None,
                 log: LogFn | None = None) -> None:
        from core.engine.hf_backend import CausalLabelScorer
        from core.engine.prompts import PromptEncoder

        self.fmt, self.template, self.max_len = fmt, template, max_len
        self.tokenizer, self.device, self.batch_size = tokenizer, device, batch_size
        self.label_ids = claim_label_ids(tokenizer, template.label_words)
        self.module = CausalLabelScorer(lm, self.label_ids)
        self.spec, self.dtype, self.vllm_cfg = spec, dtype, vllm_cfg
        self.log = log or (lambda _m: None)
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else (tokenizer.eos_token_id or 0))
        self.encoder = PromptEncoder(tokenizer, fmt, max_len, causal=True,
                                     segmenter=lambda it: claim_segments(template, it["row"], it["demos"]))

    def encode(self, rows: Sequence[dict[str, Any]], demos: Demos | None = None) -> list[list[int]]:
        """Token ids per row: BOS when the tokenizer adds one, demonstrations, the claim, the cue last."""
        if demos is not None and len(demos) != len(rows):
            raise ValueError(f"{len(rows)} rows but {len(demos)} demonstration lists")
        return self.encoder.encode_many(
            [{"row": r, "demos": list(demos[i]) if demos else []} for i, r in enumerate(rows)]
        )

    def score(self, rows: Sequence[dict[str, Any]], demos: Demos | None = None) -> np.ndarray:
        """P(class 1) per row, in order."""
        from core.engine.hf_backend import Loaded, predict

        seqs = self.encode(rows, demos)
        if not seqs:
            return np.zeros(0)
        loaded = Loaded(self.spec or ModelSpec("lm", "lm"), "causal", self.tokenizer, self.encoder,
                        self.module, self.device, self.dtype, self.pad_id, uses_lora=False)
        if self.vllm_cfg is not None:
            from core.engine.vllm_backend import score_with_vllm

            return score_with_vllm(loaded, {"claims": seqs}, self.vllm_cfg, self.log)["claims"]
        return predict(loaded, seqs, self.batch_size)


class EncoderClaimScorer:
    """The encoder analogue: sentence-embedding similarity to label claims (and demonstrations)."""

    def __init__(self, backbone: Any, tokenizer: Any, fmt: Format, template: ClaimTemplate, max_len: int,
                 device: torch.device, batch_size: int) -> None:
        self.backbone, self.tokenizer, self.fmt, self.template = backbone, tokenizer, fmt, template
        self.max_len, self.device, self.batch_size = max_len, device, batch_size

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Mean-pooled, L2-normalised last hidden states (how sentence-transformers pools MiniLM)."""
        out = np.zeros((len(texts), 0), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        chunks: dict[int, np.ndarray] = {}
        self.backbone.eval()
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                batch = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                       max_length=self.max_len, return_tensors="pt").to(self.device)
                h = self.backbone(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
                m = batch["attention_mask"].unsqueeze(-1).to(h.dtype)
                pooled = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1).clamp_min(1.0), dim=-1)
                for j, i in enumerate(idx):
                    chunks[i] = pooled[j].float().cpu().numpy()
        if texts:
            out = np.stack([chunks[i] for i in range(len(texts))])
        return out

    def _judged(self, row: dict[str, Any]) -> list[str]:
        """The text(s) compared with the claims: one per binary row, (first, second) for a pair."""
        if self.fmt == "preference":
            return [render(self.template.judged, {**row, "answer": row[k]}) for k in ("first", "second")]
        return [render(self.template.judged, row)]

    def _demo_texts(self, demo: dict[str, Any], label: int) -> list[tuple[str, int]]:
        """(text, class of its prototype) a demonstration contributes."""
        texts = self._judged(demo)
        if self.fmt == "preference":  # label 0: A (first) is better -> first joins the positive claim
            better, worse = (texts[0], texts[1]) if int(label) == 0 else (texts[1], texts[0])
            return [(worse, 0), (better, 1)]
        return [(texts[0], int(label))]

    def score(self, rows: Sequence[dict[str, Any]], demos: Demos | None = None) -> np.ndarray:
        """P(class 1) per row, in order."""
        if demos is not None and len(demos) != len(rows):
            raise ValueError(f"{len(rows)} rows but {len(demos)} demonstration lists")
        if not rows:
            return np.zeros(0)
        judged = [self._judged(r) for r in rows]
        demo_texts = [[t for d, lab in (demos[i] if demos else []) for t in self._demo_texts(d, lab)]
                      for i in range(len(rows))]
        unique = list(dict.fromkeys([*self.template.label_claims, *(t for js in judged for t in js),
                                     *(t for ds in demo_texts for t, _ in ds)]))
        where = {t: i for i, t in enumerate(unique)}
        emb = self.embed(unique)
        claims = emb[[where[c] for c in self.template.label_claims]]  # [2, H]
        margins = np.zeros(len(rows))
        for i, texts in enumerate(judged):
            protos = claims.copy()
            if demo_texts[i]:
                for c in (0, 1):
                    members = [emb[where[t]] for t, lab in demo_texts[i] if lab == c]
                    protos[c] = np.mean([claims[c], *members], axis=0)
            protos /= np.linalg.norm(protos, axis=1, keepdims=True).clip(1e-12)
            s = [float(emb[where[t]] @ protos[1] - emb[where[t]] @ protos[0]) for t in texts]
            margins[i] = s[1] - s[0] if self.fmt == "preference" else s[0]
        return _logistic_by_spread(margins)


ClaimScorer = CausalClaimScorer | EncoderClaimScorer


def claim_scorer(
    model: str, fmt: Format, cfg: RunConfig, template: ClaimTemplate | None = None, log: LogFn | None = None
) -> ClaimScorer:
    """Load ``model`` untrained (eval mode, no adapters) for claim scoring.

    Causal LMs score on vLLM when ``cfg.backend`` resolves to it (CUDA and vLLM present), else on
    hf. Batch size: ``extra.predict_batch_size``, else max(2 x batch_size, 32)."""
    from transformers import AutoConfig

    from core.engine import model_kind
    from core.engine.backends import choose_backend
    from core.engine.hf_backend import _quiet_transformers, _tokenizer, max_len_for, pick_device, pick_dtype

    say = log or (lambda _m: None)
    template = template or default_template(fmt)
    spec = resolve_model(model)
    cfg = spec.effective_config(cfg)
    kind = model_kind(spec)
    choice = choose_backend(cfg.backend, kind)
    device = pick_device(cfg)
    dtype = pick_dtype(cfg, device, say)
    tok = _tokenizer(spec.path, spec.local_only)
    mcfg = AutoConfig.from_pretrained(spec.path, local_files_only=spec.local_only)
    max_len = max_len_for(cfg, tok, mcfg)
    batch = int(cfg.extra.get("predict_batch_size", max(2 * cfg.batch_size, 32)))
    with _quiet_transformers():
        if kind == "encoder":
            from core.engine.hf_backend import load_encoder_backbone

            backbone = load_encoder_backbone(spec, mcfg, dtype).to(device)
            say(f"claim scoring: {spec.name} (encoder) by embedding similarity to label claims")
            return EncoderClaimScorer(backbone, tok, fmt, template, max_len, device, batch)
        from transformers import AutoModelForCausalLM

        if spec.num_layers:
            mcfg.num_hidden_layers = spec.num_layers
        kwargs: dict[str, Any] = {"config": mcfg, "local_files_only": spec.local_only, "dtype": dtype}
        if device.type == "cuda":
            kwargs["device_map"] = {"": device.index or 0}  # load straight onto the GPU
        lm: Any = AutoModelForCausalLM.from_pretrained(spec.path, **kwargs)
        if device.type != "cuda":
            lm.to(device)
        lm.eval()
    say(f"claim scoring: {spec.name} (causal LM, label words {template.label_words!r}, score={choice.score})")
    return CausalClaimScorer(lm, tok, fmt, template, max_len, device, batch, spec=spec, dtype=dtype,
                             vllm_cfg=cfg if choice.score == "vllm" else None, log=say)


def score_claims(
    model: str,
    fmt: Format,
    rows: Sequence[dict[str, Any]],
    cfg: RunConfig,
    template: ClaimTemplate | None = None,
    demos: Demos | None = None,
    log: LogFn | None = None,
) -> np.ndarray:
    """P(class 1) of each row according to the untrained ``model`` (one load, one pass)."""
    from core.engine.hf_backend import seed_everything, set_threads

    set_threads()
    seed_everything(cfg.seed)
    return claim_scorer(model, fmt, cfg, template, log).score(rows, demos)
