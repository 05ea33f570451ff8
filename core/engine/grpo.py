"""GRPO on our causal LMs, through TRL's ``GRPOTrainer`` (issue #16 item 4).

Why TRL and not our own loop: group sampling, the clipped policy-gradient loss, the KL estimator and
the reference-model bookkeeping are easy to get subtly wrong and TRL keeps them tested. What this
module adds is the glue our engine needs: it trains a :class:`~core.engine.generation.CausalLM` *in
place* (``lm.model`` afterwards is the updated policy, ready for ``generate``), takes a plain
``reward_fn(prompts, completions) -> rewards``, and leaves nothing behind — no hub, no wandb, no
checkpoints outside a temporary folder, no network.

One step = one optimiser update = one generation round: ``prompts_per_step`` prompts, each sampled
``num_generations`` times, rewarded in a single ``reward_fn`` call (completions grouped per prompt:
the first ``num_generations`` belong to the first prompt, and so on). Advantage = reward minus its
group's mean, divided by the group's standard deviation (TRL ``scale_rewards="group"``); the loss is
TRL's ``loss_type="grpo"`` (per-sequence mean of the clipped ratio term, plus ``beta`` times the k3
KL estimate to the reference). With one update per generation round the ratio is exactly 1, so the
update is the plain policy gradient plus the KL penalty. Constant learning rate; AdamW with the
reference's causal-LM betas (0.9, 0.95) and ``cfg.weight_decay``.

The reference model: with LoRA (the normal case) TRL copies the current adapter to a frozen ``ref``
adapter and scores the reference with it; it is deleted afterwards, so a second call measures KL to
the policy it started from. Without LoRA (``lora_r == 0``) TRL would reload the checkpoint from its
path (network, and the full depth even when the registry truncates layers), so we hand it a frozen
copy of the model instead.

Prompts are plain text, tokenised with the tokenizer's own special tokens exactly as
:func:`core.engine.generation.generate` does; when ``wants_chat_template`` says the model is a chat
model (``extra.chat_template``), each prompt becomes one user turn and TRL renders the template.

What TRL does to the model and we undo: it patches ``forward`` (a fused LM head; accelerate's
autocast wrapper under bf16), adds the ``ref`` adapter, and mirrors the pad token onto the model's
configs (kept: harmless). The tokenizer is copied, so the engine's cached tokenizer is never
touched (TRL sets a pad token and, here, an end token where it lacks one).

CPU: TRL 1.15 scores completions with a Triton kernel (its fused LM head), which has no CPU driver
("0 active drivers"); off CUDA we swap in a plain-torch head with the same outputs
(:func:`_torch_scored_head`), and everything else runs as on GPU (generation with
``transformers.generate``). bf16 autocast is used only on CUDA with a bf16 model, as the engine's other
trainers. The CUDA path (Triton head, bf16) has not been run by this module's tests (CPU only). GPU generation through vLLM inside TRL
(``use_vllm``, colocate mode) is switched on by ``extra.grpo_vllm=on`` when vllm is installed: that path
is **unverified** here (no GPU run of it yet); it stays off by default.
"""

from __future__ import annotations

import contextlib
import copy
import math
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from core.common.config import RunConfig
from core.engine.generation import CausalLM

RewardFn = Callable[[list[str], list[str]], list[float]]
_PROMPT_COLUMN = "w2s_prompt"  # the raw prompt text, handed back to reward_fn as given


class RewardFunctionError(RuntimeError):
    """The caller's ``reward_fn`` raised or returned something unusable; the cause is chained."""


def _reward_adapter(reward_fn: RewardFn, expected: int, done: dict[str, int]) -> Callable[..., list[float | None]]:
    """TRL's reward-function signature around ours: plain prompt and completion strings in, one
    finite float per completion out, any failure turned into one :class:`RewardFunctionError`."""

    def reward(prompts: list[Any], completions: list[Any], **kwargs: Any) -> list[float | None]:
        texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
        raw_prompts = [str(p) for p in kwargs[_PROMPT_COLUMN]]
        where = f"GRPO step {done['step'] + 1}, {len(texts)} completions"
        try:
            out = reward_fn(raw_prompts, texts)
        except Exception as exc:
            raise RewardFunctionError(f"reward_fn raised {type(exc).__name__}: {exc} ({where})") from exc
        try:
            values = [float(v) for v in out]
        except (TypeError, ValueError) as exc:
            raise RewardFunctionError(f"reward_fn must return numbers, got {out!r:.200} ({where})") from exc
        if len(values) != len(texts) or len(texts) != expected:
            raise RewardFunctionError(f"reward_fn returned {len(values)} rewards for {len(texts)} completions ({where})")
        if not all(math.isfinite(v) for v in values):
            raise RewardFunctionError(f"reward_fn returned a non-finite reward ({where})")
        return list(values)

    reward.__name__ = "reward"  # TRL logs rewards/<name>/mean
    return reward


@contextlib.contextmanager
def _restored_forwards(*modules: Any) -> Iterator[None]:
    """Undo instance-level ``forward`` patches (TRL's fused LM head, accelerate's autocast wrapper)
    so the model behaves after training exactly as it did before, apart from its weights."""
    saved = [(m, vars(m).get("forward")) for m in modules]
    try:
        yield
    finally:
        for module, before in saved:
            if before is None:
                vars(module).pop("forward", None)
            else:
                module.forward = before


def _torch_scored_head(model: Any, temperature: float) -> None:
    """Give ``model`` the ``fused_lm_head=True`` forward TRL scores completions with, in plain torch.

    Why: TRL 1.15's fused head (``trl.kernels.chunked_logprob``) is a Triton kernel, which has no CPU
    driver, so GRPO cannot score a single completion on CPU. This computes the same outputs (per-token
    log-probabilities and entropies of the temperature-scaled next-token distribution, zero where the
    label is -100, shape ``[batch, length - 1]``) by projecting only the scored positions through the
    LM head, as :func:`core.engine.generation.lm_loss` does. Without ``fused_lm_head`` the model's own
    forward runs, so generation is unchanged."""
    import functools
    import types

    import torch.nn.functional as F
    from trl.trainer.utils import FusedCausalLMOutput

    text_config = model.config.get_text_config()
    softcap = getattr(text_config, "final_logit_softcapping", None)
    scale = getattr(text_config, "logit_scale", None) or 1.0
    own_forward = type(model).forward

    @functools.wraps(own_forward)  # generate() checks its model kwargs against this signature
    def forward(
        self: Any, *args: Any, fused_lm_head: bool = False, labels: Any = None, shift_labels: Any = None,
        num_items_in_batch: Any = None, **kwargs: Any,
    ) -> Any:
        if not fused_lm_head:
            extra = {"labels": labels, "shift_labels": shift_labels, "num_items_in_batch": num_items_in_batch}
            return own_forward(self, *args, **kwargs, **{k: v for k, v in extra.items() if v is not None})
        kwargs["use_cache"] = False
        hidden = self.base_model(*args, **kwargs).last_hidden_state
        if shift_labels is None:
            hidden, targets = hidden[:, :-1], labels[:, 1:]
        else:
            targets = shift_labels
        mask = targets != -100
        logits = self.get_output_embeddings()(hidden[mask]).float() * scale
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        logp = F.log_softmax(logits / temperature, dim=-1)
        picked = logp.gather(-1, targets[mask].unsqueeze(-1)).squeeze(-1)
        entropy = -(logp.exp() * logp).sum(-1)
        log_probs = picked.new_zeros(mask.shape).masked_scatter(mask, picked)
        count = mask.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch
        return FusedCausalLMOutput(
            loss=-log_probs.sum() / count,
            log_probs=log_probs,
            entropy=entropy.new_zeros(mask.shape).masked_scatter(mask, entropy),
            label_mask=mask,
        )

    model.forward = types.MethodType(forward, model)


def _score_head(model: Any, temperature: float, device: torch.device) -> None:
    """TRL's Triton head on CUDA, ours elsewhere."""
    if device.type == "cuda":
        from trl.trainer.utils import add_fused_lm_head

        add_fused_lm_head(model, temperature=temperature)
    else:
        _torch_scored_head(model, temperature)


@contextlib.contextmanager
def _restored_special_tokens(model: Any) -> Iterator[None]:
    """TRL aligns the model's config and generation config with the tokenizer's pad/bos/eos (and our
    copy may name an end token the model never had); put them back, so ``generate`` stops where it
    stopped before."""
    holders = [model.config.get_text_config(), getattr(model, "generation_config", None)]
    names = ("pad_token_id", "bos_token_id", "eos_token_id")
    saved = [(h, {n: copy.deepcopy(getattr(h, n, None)) for n in names}) for h in holders if h is not None]
    try:
        yield
    finally:
        for holder, values in saved:
            for name, value in values.items():
                setattr(holder, name, value)


def _micro_batch(total: int, want: int) -> int:
    """The largest divisor of ``total`` that is at most ``want`` (TRL splits a generation round
    into equal micro-batches, one gradient-accumulation step each)."""
    want = max(1, min(want, total))
    return max(d for d in range(1, want + 1) if total % d == 0)


def _use_vllm(cfg: RunConfig, device: torch.device) -> bool:
    if str(cfg.extra.get("grpo_vllm", "off")).lower() not in ("on", "true", "1", "yes") or device.type != "cuda":
        return False
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def grpo_train(
    lm: CausalLM,
    prompts: Sequence[str],
    reward_fn: RewardFn,
    cfg: RunConfig,
    *,
    steps: int,
    num_generations: int = 4,
    max_new_tokens: int = 48,
    lr: float = 1e-5,
    beta: float = 0.04,
    temperature: float = 1.0,
    prompts_per_step: int = 8,
    progress: Callable[[float, str], None] | None = None,
) -> dict[str, Any]:
    """Train ``lm.model`` with GRPO for ``steps`` optimiser steps; returns ``{"steps",
    "reward_mean_per_step", "kl", "seconds", ...}`` (``kl`` per step; zeros when ``beta == 0``).

    ``prompts_per_step`` is capped at ``len(prompts)`` (TRL drops incomplete prompt batches); the
    prompts are reshuffled (seeded by ``cfg.seed``) each time they run out."""
    from transformers import TrainerCallback

    from core.engine.chat_models import wants_chat_template
    from core.engine.hf_backend import seed_everything

    if steps < 1:
        raise ValueError("steps must be >= 1")
    if num_generations < 2:
        raise ValueError("GRPO needs num_generations >= 2 (the advantage is relative to the group)")
    if not prompts:
        raise ValueError("no prompts to train on")
    prompts_per_step = max(1, min(prompts_per_step, len(prompts)))
    per_round = prompts_per_step * num_generations
    micro = _micro_batch(per_round, max(cfg.batch_size, num_generations))
    say = progress or (lambda _f, _m: None)

    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    model = lm.model
    was_training = model.training
    is_peft = hasattr(model, "get_base_model") and hasattr(model, "peft_config")
    base = model.get_base_model() if is_peft else model
    tokenizer = copy.deepcopy(lm.tokenizer)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token_id = lm.pad_id
    if tokenizer.eos_token_id is None:
        # TRL needs an end token to stop completions at; WordPiece tokenizers (the tiny test models)
        # have none, so [SEP] plays it here (generation.generate never stops early on them).
        tokenizer.eos_token = tokenizer.sep_token or tokenizer.pad_token
    chat = wants_chat_template(lm.spec, lm.tokenizer, cfg, getattr(base, "config", None))
    rows = {
        "prompt": [[{"role": "user", "content": p}] for p in prompts] if chat else list(prompts),
        _PROMPT_COLUMN: list(prompts),
    }
    cuda_bf16 = lm.device.type == "cuda" and lm.dtype == torch.bfloat16
    vllm = _use_vllm(cfg, lm.device)
    done = {"step": 0}
    metrics: list[dict[str, float]] = []

    class _Watch(TrainerCallback):
        """Progress is said when a step's metrics are logged (logging_steps=1): the Trainer logs a step
        after its ``on_step_end``, so saying it there showed the previous step's reward."""

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
            if logs and "reward" in logs:
                metrics.append(dict(logs))
                say(state.global_step / steps, f"GRPO step {state.global_step}/{steps} reward {float(logs['reward']):.3f}")

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            done["step"] = int(state.global_step)

    ref_copy = None
    if not is_peft and beta != 0.0:  # TRL would reload the model from its path: give it a frozen copy
        ref_copy = copy.deepcopy(base).eval()
        for p in ref_copy.parameters():
            p.requires_grad_(False)

    seed_everything(cfg.seed)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="w2s-grpo-") as tmp, _restored_forwards(model, base), _restored_special_tokens(base):
        args = GRPOConfig(
            output_dir=tmp,
            max_steps=steps,
            per_device_train_batch_size=micro,
            gradient_accumulation_steps=per_round // micro,
            steps_per_generation=per_round // micro,
            num_generations=num_generations,
            max_completion_length=max_new_tokens,
            temperature=float(temperature),
            top_p=1.0,
            learning_rate=float(lr),
            lr_scheduler_type="constant",
            warmup_steps=0,
            adam_beta1=0.9,
            adam_beta2=0.95,
            weight_decay=float(cfg.weight_decay),
            beta=0.0 if ref_copy is not None else float(beta),
            loss_type="grpo",
            scale_rewards="group",
            num_iterations=1,
            seed=cfg.seed,
            data_seed=cfg.seed,
            use_cpu=lm.device.type == "cpu",
            bf16=cuda_bf16,
            fp16=False,
            gradient_checkpointing=False,  # already set on the model per cfg (prepare_causal_lm)
            use_vllm=vllm,
            vllm_mode="colocate",
            report_to=[],
            logging_steps=1,
            save_strategy="no",
            push_to_hub=False,
            disable_tqdm=True,
            dataloader_num_workers=0,
            remove_unused_columns=False,
            log_completions=False,
        )
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=_reward_adapter(reward_fn, per_round, done),
            args=args,
            train_dataset=Dataset.from_dict(rows),
            processing_class=tokenizer,
            callbacks=[_Watch()],
        )
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # its logs go to our callback, not stdout
        if lm.device.type != "cuda":  # TRL patched in its Triton head: no CPU driver for it
            _torch_scored_head(base, float(temperature))
        if ref_copy is not None:
            _score_head(ref_copy, float(temperature), lm.device)
            trainer.ref_model = trainer.accelerator.prepare_model(ref_copy, evaluation_mode=True)
            trainer.beta = float(beta)
        try:
            trainer.train()
        except RewardFunctionError as exc:
            # one error, raised here rather than from deep inside the trainer; its cause stays chained
            raise RewardFunctionError(str(exc)) from exc.__cause__
        finally:
            if is_peft and "ref" in model.peft_config:
                model.delete_adapter("ref")
            if is_peft and "default" in model.peft_config:
                model.set_adapter("default")
            del trainer
    seconds = time.perf_counter() - started
    model.train(was_training)
    return {
        "steps": len(metrics),
        "reward_mean_per_step": [float(m["reward"]) for m in metrics],
        "reward_std_per_step": [float(m.get("reward_std", float("nan"))) for m in metrics],
        "kl": [float(m.get("kl", 0.0)) for m in metrics],
        "loss": [float(m.get("loss", float("nan"))) for m in metrics],
        "seconds": seconds,
        "seconds_per_step": seconds / max(1, len(metrics)),
        "prompts_per_step": prompts_per_step,
        "num_generations": num_generations,
        "chat_template": chat,
        "vllm": vllm,
    }
