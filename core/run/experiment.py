"""Shared steps for ideas, so no idea re-implements data loading, weak-label alignment or training.

Everything here is on the *untrusted* side. In a run, the idea executes inside a sandbox
(``core.run.sandboxed_idea``) and these helpers read only the inputs the trusted runner staged for
it: the folder named by ``$W2S_IDEA_INPUTS`` holds the label-free ``train_unlabel``/``test`` rows
(already cut to train_size/test_size), the label-free ``train_label`` rows (the weak model's
training texts: which rows it saw reveals no label), the weak model's P(class 1) for this seed
(ids + numbers only: no accuracies, no label distributions) and the run's config. Called directly
(tests, a notebook), they read the label-free view (``data/<ds>/``) and the results cache as before.
The weak judge (:func:`train_weak_judge`) is trained and run by the trusted side
(``core.run.judge_service``) on texts the idea supplies; called directly the same service runs in
this process, reading the labelled data itself: direct mode is NOT isolated.
Scoring and PGR are the referee's job, never an idea's: an idea returns
``{"test_predictions": {id: P(class 1)}, ...}`` and the trusted side scores it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.common.config import RunConfig
from core.common.errors import UserError
from core.common.workspace import paths
from core.data.datasets import LABEL_FREE_DROP, Format, Split, load_split
from core.results.cache import TRAIN_CEILING, WEAK_ARTIFACTS, ceiling_key, read_result, weak_artifacts_key
from core.results.pins import pinned_config  # baselines use the pinned spec, not the idea's
from core.run import judge_client
from core.run.judge_client import WeakJudge

INPUTS_ENV = "W2S_IDEA_INPUTS"  # the staged input folder inside the sandbox
TRAIN_FILE = "train_unlabel.jsonl"
TEST_FILE = "test.jsonl"
TRAIN_LABEL_FILE = "train_label.jsonl"  # staged without labels: the weak judge's training rows
WEAK_FILE = "weak_soft_labels.json"  # {"dataset", "seed", "weak_model", "ids": [...], "p1": [...]}
CONFIG_FILE = "config.json"  # the RunConfig the seed runs with

ProgressFn = Callable[[float, str], None]
LogFn = Callable[[str], None]

_progress: ContextVar[ProgressFn | None] = ContextVar("w2s_progress", default=None)
_log: ContextVar[LogFn | None] = ContextVar("w2s_log", default=None)


@contextmanager
def reporting(progress: ProgressFn | None, log: LogFn | None) -> Iterator[None]:
    """Let the runner receive progress/log lines from inside ``run_experiment(cfg)``."""
    tp, tl = _progress.set(progress), _log.set(log)
    try:
        yield
    finally:
        _progress.reset(tp)
        _log.reset(tl)


def report(fraction: float, message: str = "") -> None:
    fn = _progress.get()
    if fn is not None:
        fn(max(0.0, min(1.0, float(fraction))), message)


def log(message: str) -> None:
    fn = _log.get()
    if fn is not None:
        fn(message)
    else:
        print(message, flush=True)


def resolve_data_dir(data_dir: str) -> Path:
    """``data_dir`` is relative to the workspace unless absolute."""
    p = Path(data_dir).expanduser()
    return p if p.is_absolute() else paths().root / p


@dataclass
class LabelFreeData:
    """What an idea may see: rows without label/subset/difficulty, each with its ``id``."""

    fmt: Format
    train: list[dict[str, Any]]
    test: list[dict[str, Any]]

    @property
    def train_ids(self) -> list[str]:
        return [r["id"] for r in self.train]

    @property
    def test_ids(self) -> list[str]:
        return [r["id"] for r in self.test]


def _strip(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in LABEL_FREE_DROP} for r in rows]


def staged_inputs() -> Path | None:
    """The folder the runner staged this run's inputs in (``$W2S_IDEA_INPUTS``), or None when called
    directly."""
    value = os.environ.get(INPUTS_ENV)
    return Path(value) if value else None


def _read_split(path: Path) -> Split:
    if not path.is_file():
        raise UserError(f"{path}: missing (prepare the label-free view with `w2s data prepare`)")
    try:
        return load_split(path)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def read_label_free(folder: Path, cfg: RunConfig) -> LabelFreeData:
    """``train_unlabel`` and ``test`` from ``folder``, without label fields, cut to the config's sizes."""
    train_split = _read_split(folder / TRAIN_FILE)
    test_split = _read_split(folder / TEST_FILE)
    train, test = _strip(train_split.rows), _strip(test_split.rows)
    if cfg.train_size is not None:
        train = train[: cfg.train_size]
    if cfg.test_size is not None:
        test = test[: cfg.test_size]
    return LabelFreeData(test_split.fmt, train, test)


def load_label_free(cfg: RunConfig) -> LabelFreeData:
    """Load ``train_unlabel`` and ``test`` (cut to train_size/test_size): the staged copy in a run,
    else ``cfg.data_dir``."""
    staged = staged_inputs()
    return read_label_free(staged if staged is not None else resolve_data_dir(cfg.data_dir), cfg)


def load_train_label_free(cfg: RunConfig) -> list[dict[str, Any]]:
    """The ``train_label`` rows without label fields (each with its ``id``): the ids a weak judge
    trains on (:func:`train_weak_judge`). In a run, the staged copy; called directly, the label-free
    view's file when it has one, else the trusted side's rows stripped (direct mode is not isolated)."""
    staged = staged_inputs()
    if staged is not None:
        if not (staged / TRAIN_LABEL_FILE).is_file():
            raise UserError("no train_label rows were staged for this run (the trusted side has no labelled "
                            f"{cfg.dataset} train_label split)")
        return _strip(_read_split(staged / TRAIN_LABEL_FILE).rows)
    view = resolve_data_dir(cfg.data_dir) / TRAIN_LABEL_FILE
    if view.is_file():
        return _strip(_read_split(view).rows)
    from core.run.judge_service import label_free_train_label

    return _strip(label_free_train_label(cfg))


_direct_judges: dict[str, Any] = {}


def _judge_transport(cfg: RunConfig, timeout_s: float) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """In a run: the file channel to the runner. Called directly: an in-process service per run
    config (not isolated: it reads ``labeled_data/`` in this process, as the trusted side does)."""
    if staged_inputs() is not None:
        return judge_client.sandbox_transport(timeout_s)
    from core.run.judge_service import JudgeService

    key = cfg.to_json()
    if key not in _direct_judges:
        data = read_label_free(resolve_data_dir(cfg.data_dir), cfg)
        _direct_judges[key] = JudgeService.for_run(cfg, data.train_ids + data.test_ids, log)
    service = _direct_judges[key]
    return lambda request: service.handle(json.loads(json.dumps(request)))


def train_weak_judge(cfg: RunConfig, texts: dict[str, str], timeout_s: float | None = None) -> WeakJudge:
    """A weak judge trained by the trusted side on ``{key: text}`` with the rows' ground truth, where
    a key is a ``train_label`` row id or ``<train_label id>#<suffix>`` (up to 4 texts per row, each
    carrying its row's label; at least 16 rows); returns a handle whose
    ``predict({key: text}) -> {key: P(class 1)}`` scores texts about ``train_unlabel``/``test`` rows
    (key ``<row id>`` or ``<row id>#<suffix>``). Budgets (judges and predicted texts per run) are the
    trusted side's; a refusal raises ``UserError`` with its reason.
    See ``core.run.judge_service``."""
    timeout = judge_client.DEFAULT_TIMEOUT_S if timeout_s is None else float(timeout_s)
    return judge_client.train(texts, _judge_transport(cfg, timeout))


def _staged_weak(cfg: RunConfig, folder: Path) -> dict[str, Any]:
    path = folder / WEAK_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: staged weak labels unreadable ({exc})") from None
    if doc.get("dataset") != cfg.dataset or doc.get("seed") != cfg.seed:
        raise UserError(
            f"staged weak labels are for {doc.get('dataset')} seed {doc.get('seed')}, "
            f"not {cfg.dataset} seed {cfg.seed}"
        )
    return doc


def weak_artifacts(cfg: RunConfig) -> dict[str, Any]:
    """The weak model's outputs for this seed: in a run, ``weak_model``, ``ids`` and ``soft_labels``
    only (no accuracies: files an idea reads carry no label statistics); called directly, the cached
    weak-model result (built by the runner before the idea starts)."""
    staged = staged_inputs()
    if staged is not None:
        doc = _staged_weak(cfg, staged)
        return {
            "weak_model": doc.get("weak_model"),
            "ids": list(doc.get("ids") or []),
            "soft_labels": [[1.0 - float(p), float(p)] for p in doc.get("p1") or []],
        }
    key = weak_artifacts_key(pinned_config(cfg))
    result = read_result(cfg.dataset, WEAK_ARTIFACTS, key, cfg.seed)
    if result is None:
        raise UserError(f"no cached weak artifacts for {cfg.dataset}/{key} seed {cfg.seed}; run via `w2s run`")
    return result


def ceiling_result(cfg: RunConfig) -> dict[str, Any] | None:
    """The cached ground-truth ceiling for this seed when called directly (reporting only); None in
    a run: the ceiling's accuracy is a label statistic, and the leaderboard shows it."""
    if staged_inputs() is not None:
        return None
    return read_result(cfg.dataset, TRAIN_CEILING, ceiling_key(pinned_config(cfg)), cfg.seed)


def weak_soft_labels(cfg: RunConfig, ids: Sequence[str]) -> np.ndarray:
    """Weak P(class 1) for each id, aligned by row id (never by position when ids are stored)."""
    staged = staged_inputs()
    if staged is not None:
        doc = _staged_weak(cfg, staged)
        stored_ids = list(doc.get("ids") or [])
        p1 = np.asarray(doc.get("p1") or [], dtype=np.float64)
        if p1.ndim != 1 or len(p1) != len(stored_ids):
            raise UserError(f"staged weak labels for {cfg.dataset} seed {cfg.seed}: ids and p1 differ in length")
        return _align(cfg, stored_ids, p1, ids)
    return cached_weak_soft_labels(cfg, ids)


def cached_weak_soft_labels(cfg: RunConfig, ids: Sequence[str]) -> np.ndarray:
    """Weak P(class 1) for ``ids`` from the results cache (the runner stages these for a run)."""
    key = weak_artifacts_key(pinned_config(cfg))
    result = read_result(cfg.dataset, WEAK_ARTIFACTS, key, cfg.seed)
    if result is None:
        raise UserError(f"no cached weak artifacts for {cfg.dataset}/{key} seed {cfg.seed}; run via `w2s run`")
    return soft_labels_of(cfg, result, ids)


def soft_labels_of(cfg: RunConfig, result: dict[str, Any], ids: Sequence[str]) -> np.ndarray:
    """Weak P(class 1) for ``ids`` from a weak-artifacts result (``soft_labels`` N x 2, ``ids``)."""
    soft = np.asarray(result.get("soft_labels") or [], dtype=np.float64)
    if soft.ndim != 2 or soft.shape[1] != 2:
        raise UserError(f"weak artifacts for {cfg.dataset} seed {cfg.seed}: soft_labels is not N x 2")
    stored_ids = result.get("ids")
    if stored_ids is None:
        # Imported reference files carry no ids: they follow train_unlabel line order.
        full = load_split(resolve_data_dir(cfg.data_dir) / TRAIN_FILE).ids
        if len(full) != len(soft):
            raise UserError(
                f"weak artifacts for {cfg.dataset} seed {cfg.seed} have {len(soft)} rows and no ids, "
                f"but train_unlabel has {len(full)}"
            )
        stored_ids = full
    return _align(cfg, list(stored_ids), soft[:, 1], ids)


def _align(cfg: RunConfig, stored_ids: list[str], p1: np.ndarray, ids: Sequence[str]) -> np.ndarray:
    index = {rid: i for i, rid in enumerate(stored_ids)}
    missing = [rid for rid in ids if rid not in index]
    if missing:
        raise UserError(
            f"weak artifacts for {cfg.dataset} seed {cfg.seed} lack {len(missing)} train_unlabel ids "
            f"(first: {missing[0]}); rebuild them"
        )
    return p1[[index[rid] for rid in ids]]


def hard_labels(p1: np.ndarray) -> np.ndarray:
    """Hard 0/1 targets from P(class 1); ties go to class 0 like argmax."""
    return (np.asarray(p1) > 0.5).astype(np.float64)


def confidence(p1: np.ndarray) -> np.ndarray:
    """Confidence of the predicted class: max(p, 1 - p)."""
    p1 = np.asarray(p1, dtype=np.float64)
    return np.maximum(p1, 1.0 - p1)


def train_strong(
    cfg: RunConfig,
    fmt: Format,
    rows: list[dict[str, Any]],
    targets: np.ndarray,
    predict_sets: dict[str, list[dict[str, Any]]],
    sample_weights: np.ndarray | None = None,
    progress_span: tuple[float, float] = (0.0, 1.0),
) -> dict[str, np.ndarray]:
    """Train ``cfg.strong_model`` on (rows, targets) and return P(class 1) for each predict set."""
    from core.engine import train_and_predict

    if not rows:
        raise UserError("no training rows left for the strong model")
    lo, hi = progress_span

    def progress(frac: float, message: str) -> None:
        report(lo + (hi - lo) * frac, message)

    return train_and_predict(
        cfg.strong_model,
        fmt,
        rows,
        np.asarray(targets, dtype=np.float64),
        predict_sets,
        cfg,
        sample_weights=sample_weights,
        progress=progress,
        log=log,
    )


def predictions(rows: Sequence[dict[str, Any]], probs: np.ndarray) -> dict[str, float]:
    """``{row id: P(class 1)}``: the shape every idea returns as ``test_predictions``."""
    if len(rows) != len(probs):
        raise ValueError(f"{len(rows)} rows but {len(probs)} probabilities")
    return {r["id"]: float(p) for r, p in zip(rows, probs, strict=True)}


def transfer(
    cfg: RunConfig,
    data: LabelFreeData,
    rows: list[dict[str, Any]],
    targets: np.ndarray,
    sample_weights: np.ndarray | None = None,
    progress_span: tuple[float, float] = (0.0, 1.0),
    **stats: Any,
) -> dict[str, Any]:
    """The common tail of most ideas: train strong on the chosen targets, predict test, package."""
    start = time.time()
    probs = train_strong(cfg, data.fmt, rows, targets, {"test": data.test}, sample_weights, progress_span)
    return {
        "test_predictions": predictions(data.test, probs["test"]),
        "n_train": len(rows),
        "training_time": time.time() - start,
        **stats,
    }


# -- unsupervised elicitation: what the untrained strong model believes --------------------------
def claim_template(fmt: Format, **changes: Any) -> Any:
    """The reference's zero-shot claim template for ``fmt`` (``core.engine.claims``), with fields
    replaced (``prompt``, ``label_words``, ``judged``, ``label_claims``)."""
    from dataclasses import replace

    from core.engine.claims import default_template

    return replace(default_template(fmt), **changes) if changes else default_template(fmt)


def score_claims(
    cfg: RunConfig,
    fmt: Format,
    rows: Sequence[dict[str, Any]],
    template: Any = None,
    demos: Sequence[Sequence[tuple[dict[str, Any], int]]] | None = None,
    model: str | None = None,
) -> np.ndarray:
    """P(class 1) of each row by the *untrained* ``model`` (default ``cfg.strong_model``): next-token
    label words for causal LMs, label-claim embedding similarity for encoders (``core.engine.claims``).
    ``demos``: per row, (row, class) demonstrations placed before it (few-shot)."""
    from core.engine.claims import score_claims as engine_score

    try:
        return engine_score(model or cfg.strong_model, fmt, rows, cfg, template, demos, log)
    except ValueError as exc:  # a template field the rows lack, a too-small max_ctx: the user's to fix
        raise UserError(f"claim scoring: {exc}") from None


def demo_schedule(value: Any) -> list[int]:
    """Few-shot rounds from an idea parameter: ``2-4-16`` (or ``2,4,16``, or one count) -> [2, 4, 16]."""
    from core.run.elicitation import parse_schedule

    try:
        return parse_schedule(value)
    except ValueError as exc:
        raise UserError(str(exc)) from None


@dataclass
class Elicited:
    """Labels the strong model gave ``train_unlabel`` without any label: per original row ``p1``
    (its final P(class 1)) and ``labels`` (after the consistency fix); ``rows``/``targets`` the
    training set after balancing (preference rows may have their answers swapped); ``stages`` the
    label-free statistics of each round."""

    p1: np.ndarray
    labels: np.ndarray
    rows: list[dict[str, Any]]
    targets: np.ndarray
    stages: list[dict[str, Any]]
    balance: dict[str, Any]


def _stage(name: str, work: list[dict[str, Any]], groups: list[list[int]], labels: np.ndarray,
           p1: np.ndarray, **more: Any) -> dict[str, Any]:
    from core.run.elicitation import confidences, consistency_rate

    return {"stage": name, "class_1_share": float(np.mean(labels)) if len(labels) else None,
            "consistency": consistency_rate(work, groups, labels),
            "mean_confidence": float(np.mean(confidences(p1, labels))) if len(labels) else None, **more}


def elicit_labels(
    cfg: RunConfig,
    data: LabelFreeData,
    schedule: Sequence[int] = (),
    demo_labels: str = "self",
    balance: bool = True,
    template: Any = None,
    progress_span: tuple[float, float] = (0.0, 0.3),
) -> Elicited:
    """Zero-shot labels of ``train_unlabel`` by the untrained strong model, then one few-shot round
    per count in ``schedule`` (demonstrations: other ``train_unlabel`` rows, labelled by the previous
    round when ``demo_labels`` is ``self``, as the reference does, or by the weak model when ``weak``;
    never ground truth). Each round: score, consistency fix. Then confidence balancing. See
    ``core.run.elicitation`` for each step."""
    from core.engine.claims import claim_scorer
    from core.engine.hf_backend import seed_everything, set_threads
    from core.run import elicitation as ue

    if demo_labels not in ("self", "weak"):
        raise UserError(f"demo_labels must be 'self' or 'weak', got {demo_labels!r}")
    fmt, rows = data.fmt, list(data.train)
    if not rows:
        raise UserError("no train_unlabel rows to label")
    if fmt == "preference":
        work, originals = ue.augment_flipped(rows)
    else:
        work, originals = list(rows), list(range(len(rows)))
    groups = ue.consistency_groups(work)
    weak_work: np.ndarray | None = None
    if schedule and demo_labels == "weak":
        weak = hard_labels(weak_soft_labels(cfg, data.train_ids)).astype(np.int64)
        weak_work = np.repeat(weak, 2) if fmt == "preference" else weak
        if fmt == "preference":
            weak_work[1::2] = 1 - weak_work[1::2]  # the flipped copy prefers the other answer
    lo, hi = progress_span
    rounds = 1 + len(schedule)
    set_threads()
    seed_everything(cfg.seed)
    try:
        scorer = claim_scorer(cfg.strong_model, fmt, cfg, template, log)
        stages: list[dict[str, Any]] = []
        labels = np.zeros(len(work), dtype=np.int64)
        p1 = np.zeros(len(work))
        for r, k in enumerate([0, *schedule]):
            report(lo + (hi - lo) * r / rounds, f"elicit: {'zero-shot' if k == 0 else f'{k}-shot'} scoring")
            demos = None
            if k:
                pool = labels if weak_work is None else weak_work
                picks = ue.sample_demos(pool, groups, k, seed=cfg.seed + r)
                demos = [[(work[j], lab) for j, lab in d] for d in picks]
            p1 = scorer.score(work, demos)
            raw = (p1 > 0.5).astype(np.int64)
            labels = ue.consistency_fix(work, groups, p1)
            name = "zeroshot" if k == 0 else f"fewshot_{k}"
            stages.append(_stage(name, work, groups, labels, p1, demos=k,
                                 consistency_before_fix=ue.consistency_rate(work, groups, raw),
                                 changed_by_fix=int((raw != labels).sum())))
            log(f"elicit {name}: class 1 share {stages[-1]['class_1_share']:.3f}, consistency "
                f"{stages[-1]['consistency_before_fix']:.3f} -> {stages[-1]['consistency']:.3f} "
                f"({stages[-1]['changed_by_fix']} labels changed by the fix)")
    except ValueError as exc:
        raise UserError(f"claim scoring: {exc}") from None
    conf = ue.confidences(p1, labels)
    p1_o, lab_o, conf_o = p1[originals], labels[originals], conf[originals]
    if balance:
        b = ue.balance_by_confidence(fmt, lab_o, conf_o)
    else:
        b = ue.Balanced(np.arange(len(rows)), np.zeros(len(rows), dtype=bool), {"balanced": False})
    train_rows = [ue.flip_pair(rows[i]) if f else rows[i] for i, f in zip(b.keep, b.flip, strict=True)]
    targets = np.where(b.flip, 1 - lab_o[b.keep], lab_o[b.keep]).astype(np.float64)
    log(f"elicit: {len(train_rows)}/{len(rows)} rows to train on, class 1 share "
        f"{float(targets.mean()) if len(targets) else 0:.3f} ({b.info.get('method', 'none')})")
    report(hi, "elicit: labels ready")
    return Elicited(p1_o, lab_o, train_rows, targets, stages, b.info)


# -- generation and language-modelling loss (causal LMs) -----------------------------------------
def load_lm(cfg: RunConfig, model: str | None = None, trainable: bool = False) -> Any:
    """A causal LM (default ``cfg.strong_model``) for :func:`generate` and :func:`lm_loss`."""
    from core.engine.generation import load_causal_lm

    try:
        return load_causal_lm(model or cfg.strong_model, cfg, trainable=trainable, log=log)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def generate(lm: Any, prompts: Sequence[str], cfg: RunConfig, batch_size: int = 8) -> list[list[str]]:
    """``cfg.num_samples`` completions per prompt, with the config's max_new_tokens, temperature, top_p, seed."""
    from core.engine.generation import generate as engine_generate

    return engine_generate(lm, prompts, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                           top_p=cfg.top_p, num_samples=cfg.num_samples, seed=cfg.seed, batch_size=batch_size)


def lm_loss(lm: Any, prompts: Sequence[str], completions: Sequence[str], max_len: int | None = None) -> Any:
    """Mean cross-entropy of ``completions`` given ``prompts`` (a torch scalar with grad)."""
    from core.engine.generation import lm_loss as engine_lm_loss

    return engine_lm_loss(lm, prompts, completions, max_len)
