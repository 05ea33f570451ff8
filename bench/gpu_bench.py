"""GPU throughput of the engine's causal path on a Qwen3-4B-shaped model (random weights from a
config, bf16, LoRA r=32 on all projections, sequence 1024): tokens/s for training and for scoring.

    uv run python bench/gpu_bench.py                       # the full Qwen3-4B shape, needs a GPU
    uv run python bench/gpu_bench.py --tiny --steps 2      # a toy shape that runs on CPU (smoke test)

Training uses the engine's own ``CausalLabelScorer`` (hidden state at the last position times the
two label rows of the LM head only) and loss; scoring merges the LoRA adapter into the weights
first (``merge_and_unload``) and runs under ``torch.inference_mode``. Options to try for speed:
``--compile`` (torch.compile of the decoder), ``--batch-size``, ``--score-batch-sizes``,
``--attn`` (sdpa | flash_attention_2 | eager), ``--grad-ckpt``. Prints figures; asserts nothing.
Reference (issue 3, plain transformers + peft on an H200): 11,957 tok/s training at batch 8;
scoring 28,140 tok/s unmerged and 51,000 tok/s merged. Goals: >= 24,000 and >= 60,000.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from core.common.config import RunConfig  # noqa: E402
from core.engine.hf_backend import CausalLabelScorer, lora_config  # noqa: E402
from core.engine.losses import soft_xent  # noqa: E402

QWEN3_4B = dict(
    vocab_size=151936, hidden_size=2560, intermediate_size=9728, num_hidden_layers=36,
    num_attention_heads=32, num_key_value_heads=8, head_dim=128, max_position_embeddings=40960,
    rope_theta=1_000_000.0, rms_norm_eps=1e-6, tie_word_embeddings=True,
)
TINY = dict(
    vocab_size=1024, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
    num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=2048,
    tie_word_embeddings=True,
)
PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def build(shape: dict, device: torch.device, dtype: torch.dtype, attn: str, lora_r: int) -> CausalLabelScorer:
    from peft import get_peft_model
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(**shape, attn_implementation=attn)
    torch.manual_seed(0)
    with torch.device(device):
        lm = Qwen3ForCausalLM(config).to(dtype)
    cfg = RunConfig(lora_r=lora_r, lora_alpha=lora_r, lora_dropout=0.0, extra={"lora_target_modules": PROJECTIONS})
    lm = get_peft_model(lm, lora_config(cfg, "CAUSAL_LM"))
    return CausalLabelScorer(lm, (32, 33)).to(device)


def bench_train(scorer: CausalLabelScorer, args: argparse.Namespace, device: torch.device, vocab: int) -> float:
    params = [p for p in scorer.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, fused=device.type == "cuda")
    gen = torch.Generator(device="cpu").manual_seed(0)
    ids = torch.randint(100, vocab, (args.batch_size, args.seq), generator=gen).to(device)
    mask = torch.ones_like(ids)
    targets = torch.rand(args.batch_size, generator=gen).to(device)
    scorer.train()
    forward = torch.compile(scorer) if args.compile else scorer
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    t0 = 0.0
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            sync(device)
            t0 = time.perf_counter()
        with autocast:
            loss = soft_xent(forward(ids, mask), targets)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    sync(device)
    return args.steps * args.batch_size * args.seq / (time.perf_counter() - t0)


def bench_score(scorer: CausalLabelScorer, bs: int, args: argparse.Namespace, device: torch.device,
                vocab: int) -> float:
    ids = torch.randint(100, vocab, (bs, args.seq), device=device)
    mask = torch.ones_like(ids)
    forward = torch.compile(scorer) if args.compile else scorer
    scorer.eval()
    with torch.inference_mode():
        for _ in range(args.warmup):
            forward(ids, mask)
        sync(device)
        t0 = time.perf_counter()
        for _ in range(args.steps):
            torch.softmax(forward(ids, mask), -1)
        sync(device)
    return args.steps * bs * args.seq / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiny", action="store_true", help="toy shape; runs on CPU in seconds")
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--score-batch-sizes", default="8,16,32,64")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--lora-r", type=int, default=32)
    ap.add_argument("--attn", default="sdpa")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--grad-ckpt", action="store_true")
    ap.add_argument("--skip-unmerged", action="store_true", help="skip scoring through the unmerged adapter")
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type != "cuda" and not args.tiny:
        sys.exit("no CUDA device: the Qwen3-4B shape needs a GPU (use --tiny for a CPU smoke test)")
    shape = TINY if args.tiny else QWEN3_4B
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else "CPU"
    print(f"device {name}; torch {torch.__version__}; shape {'tiny' if args.tiny else 'Qwen3-4B'}; "
          f"seq {args.seq}; LoRA r={args.lora_r}; attn {args.attn}; compile {args.compile}", flush=True)
    scorer = build(shape, device, dtype, args.attn, args.lora_r)
    if args.grad_ckpt:
        scorer.lm.get_base_model().gradient_checkpointing_enable()
    vocab = shape["vocab_size"]
    tps = bench_train(scorer, args, device, vocab)
    print(f"training: {tps:,.0f} tokens/s (batch {args.batch_size})", flush=True)
    if device.type == "cuda":
        print(f"peak memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB", flush=True)
    sizes = [int(x) for x in args.score_batch_sizes.split(",") if x]
    if not args.skip_unmerged:
        for bs in sizes[:1]:
            print(f"scoring (unmerged LoRA): {bench_score(scorer, bs, args, device, vocab):,.0f} tokens/s "
                  f"(batch {bs})", flush=True)
    scorer.merge_adapters()
    for bs in sizes:
        print(f"scoring (merged): {bench_score(scorer, bs, args, device, vocab):,.0f} tokens/s (batch {bs})",
              flush=True)


if __name__ == "__main__":
    main()
