"""Whether a checkpoint is a chat/instruct model, and so whether its prompts go through the chat
template: decided from the model's identity (its hub id, even behind a hash-named snapshot folder),
never from a folder name alone."""

from __future__ import annotations

import re
from typing import Any

from core.common.config import RunConfig
from core.engine.models import ModelSpec

# Hugging Face ids whose chat template the model was tuned on (True) or not (False); names not listed
# fall back to the patterns below. Base models often ship a template they were never trained with.
KNOWN_CHAT_MODELS: dict[str, bool] = {
    "qwen/qwen1.5-0.5b-chat": True,
    "qwen/qwen3-4b-base": False,
}
_CHAT_NAME = re.compile(r"(chat|instruct|[-_]it$|[-_]it[-_]|[-_]sft|rlhf|dpo|^qwen/qwen3-[0-9.]+b$)")
_BASE_NAME = re.compile(r"(^|[-_/])base($|[-_])")
_HUB_FOLDER = re.compile(r"^models--(.+)$")


def model_identity(spec: ModelSpec, model_config: Any = None) -> str:
    """The Hugging Face id a checkpoint came from, lower-cased: the id itself; for a hub cache
    snapshot (``.../models--Org--Name/snapshots/<hash>``) the ``Org/Name`` its folders spell; else
    the config's ``_name_or_path`` when that is an id; else the folder name."""
    if not spec.local_only:
        return spec.path.lower()
    parts = spec.path.replace("\\", "/").rstrip("/").split("/")
    for part in reversed(parts):
        m = _HUB_FOLDER.match(part)
        if m:
            return m.group(1).replace("--", "/").lower()
    origin = str(getattr(model_config, "_name_or_path", "") or "")
    if origin and "/" in origin and not origin.startswith(("/", ".", "~")):
        return origin.lower()
    return parts[-1].lower()


def is_chat_model(spec: ModelSpec, model_config: Any = None) -> bool:
    """Whether the checkpoint is an instruct/chat model: the registry's ``chat`` flag, then
    ``KNOWN_CHAT_MODELS``, then the id's wording (chat, instruct, -it, sft; never ``base``).
    Unknown names count as not chat: ``extra.chat_template=on`` turns the template on."""
    if spec.chat is not None:
        return spec.chat
    ident = model_identity(spec, model_config)
    if ident in KNOWN_CHAT_MODELS:
        return KNOWN_CHAT_MODELS[ident]
    if _BASE_NAME.search(ident):
        return False
    return bool(_CHAT_NAME.search(ident))


def wants_chat_template(spec: ModelSpec, tokenizer: Any, cfg: RunConfig, model_config: Any = None) -> bool:
    """Chat models get their chat template. ``extra.chat_template``: auto (default) | on | off; auto
    means the tokenizer has a template AND the model is an instruct/chat model (``is_chat_model``),
    never a guess from a folder name: hash-named snapshot folders resolve to their hub id."""
    mode = str(cfg.extra.get("chat_template", "auto")).lower()
    has = bool(getattr(tokenizer, "chat_template", None))
    if mode in ("off", "false", "0", "no"):
        return False
    if mode in ("on", "true", "1", "yes"):
        if not has:
            raise ValueError(f"chat_template=on but {spec.name} has no chat template")
        return True
    return has and is_chat_model(spec, model_config)
