"""The trusted weak-judge service: trains weak-size judges on ``train_label`` ground truth with texts an
idea supplies, and answers with predictions only.

Why: the critic method needs a judge that knows the labels of ``train_label`` (the weak model's
training set), while ideas may never read a label. So the trusted side holds the labels and the
models; the idea sends texts (:mod:`core.run.judge_client`) and gets back an opaque judge id and
P(class 1) for the texts it asks about. No reply carries a label, an accuracy or a label count.

- **train** ``{key: text}`` with keys ``<train_label id>`` or ``<train_label id>#<suffix>`` (at least
  :data:`MIN_TRAIN_TEXTS` train_label rows, at most :data:`MAX_TEXTS_PER_TRAIN_ROW` texts per row, every
  row a train_label row of this run; several texts of one row carry that row's label, so an idea can
  show the judge a row both with and without its extra features): ``cfg.weak_model`` is trained exactly
  as ``core.run.baselines.build_weak_artifacts``
  trains the weak model (the same engine call, the pinned spec and its passes), on (the idea's text,
  the row's ground-truth class). The text is the whole prompt (``{text}\\nLabel:``,
  ``core.engine.prompts.RAW_TEXT_FIELD``); class 1 means what label 1 means for the dataset
  (``core.data.datasets.label_to_int``: binary ``True``, preference ``B``). Encoders classify through
  their classification head, causal LMs through the engine's label-token scoring (the binary label
  words). The model stays in this process's memory for the rest of the run.
- **predict** ``{key: text}`` with keys ``<row id>`` or ``<row id>#<suffix>``, the row a
  ``train_unlabel`` or ``test`` row of this run (never ``train_label``: the judge would echo the labels
  it memorised); texts at most :data:`MAX_TEXT_CHARS` characters.
- **budgets**, set here and never by the idea: :data:`MAX_JUDGES` judges per run and
  :data:`TEXTS_PER_ROW` x (|train_unlabel| + |test|) predicted texts per run. The counts go into the
  run's result (``judge_calls``), so the leaderboard shows how much an idea leaned on the judge.

The honest limit: a judge trained on labels is an oracle about them, and free text can carry
anything, so the channel is metered and shown, not closed.

:class:`JudgeChannel` is the runner's end of the file channel: ``pump()`` is called from the sandbox's
poll loop (``core.run.runner.run_sandboxed``); it reads each request file safely (no links, size
limit, opened relative to the request folder), answers through :meth:`JudgeService.handle` and writes
the reply atomically into the reply folder, which the sandbox sees read-only.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.common.atomic import atomic_write_bytes
from core.common.config import RunConfig
from core.data.datasets import LABEL_REVEALING, Format
from core.run.judge_client import REQUEST_RE, reply_name

LogFn = Callable[[str], None]

MIN_TRAIN_TEXTS = 16  # distinct train_label rows a judge trains on
# texts per train_label row in one train request: enough for a row with and without an idea's features
# (the critic's judge reads each row with its critique and with the review withheld), small enough that
# the judge's training time stays a few times the weak model's
MAX_TEXTS_PER_TRAIN_ROW = 4
MAX_TEXT_CHARS = 8000
MAX_KEY_CHARS = 200
MAX_JUDGES = 3
TEXTS_PER_ROW = 40
MAX_REQUEST_BYTES = 64 * 1024 * 1024
MAX_REQUESTS = 20_000  # per run, refused ones included: a runaway loop cannot keep the runner busy forever
PER_PUMP = 16  # requests answered per poll, so the events relay keeps up
JUDGE_FORMAT: Format = "binary"  # the label words a causal judge scores (False / True), whatever the dataset's format


class Refused(Exception):
    """A request the service says no to; the message is the reply's one line."""


_SKIP = object()  # a request file that is never read and never answered

@dataclass
class JudgeCounts:
    """What the idea asked of the judge service in this run (recorded in the run's result)."""

    judges: int = 0
    texts: int = 0
    requests: int = 0
    refused: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"judges": self.judges, "texts": self.texts, "requests": self.requests, "refused": self.refused}


@dataclass
class JudgeService:
    """One run's judges. ``train_label`` labels are read on the first train request."""

    cfg: RunConfig
    predict_ids: frozenset[str]  # this run's train_unlabel and test ids (cut to its sizes)
    log: LogFn = print
    max_judges: int = MAX_JUDGES
    max_texts: int = 0  # 0: TEXTS_PER_ROW x len(predict_ids)
    counts: JudgeCounts = field(default_factory=JudgeCounts)
    _labels: dict[str, int] | None = None
    _judges: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.max_texts:
            self.max_texts = TEXTS_PER_ROW * len(self.predict_ids)

    @classmethod
    def for_run(cls, cfg: RunConfig, row_ids: Iterable[str], log: LogFn = print) -> JudgeService:
        """The service for ``cfg``'s run: ``row_ids`` are the predictable rows, the run's label-free
        train_unlabel and test ids (the caller reads them: the SDK imports this module, not the reverse)."""
        ids = frozenset(row_ids)
        return cls(cfg, ids, log, max_judges=MAX_JUDGES, max_texts=TEXTS_PER_ROW * len(ids))

    # -- the requests ---------------------------------------------------------------------------
    def handle(self, request: Any) -> dict[str, Any]:
        """One request -> its reply; never raises for anything the request got wrong."""
        self.counts.requests += 1
        try:
            if self.counts.requests > MAX_REQUESTS:
                raise Refused(f"request limit reached ({MAX_REQUESTS} per run)")
            if not isinstance(request, dict):
                raise Refused("malformed request: not a JSON object")
            op = request.get("op")
            if op == "train":
                return {"ok": True, "judge": self._train(request)}
            if op == "predict":
                probs = self._predict(request)
                return {"ok": True, "probs": probs, "texts_left": self.max_texts - self.counts.texts}
            raise Refused("malformed request: 'op' must be 'train' or 'predict'")
        except Refused as exc:
            self.counts.refused += 1
            return {"ok": False, "error": str(exc)}

    def _texts(self, request: dict[str, Any]) -> dict[str, str]:
        texts = request.get("texts")
        if not isinstance(texts, dict) or not texts:
            raise Refused("malformed request: 'texts' must be a non-empty {id: text} object")
        for key, text in texts.items():
            if not isinstance(text, str):
                raise Refused(f"malformed request: the text of {key[:80]!r} is not a string")
            if len(key) > MAX_KEY_CHARS:
                raise Refused(f"key {key[:80]!r}...: longer than {MAX_KEY_CHARS} characters")
            if len(text) > MAX_TEXT_CHARS:
                raise Refused(f"the text of {key[:80]!r} has {len(text)} characters; at most {MAX_TEXT_CHARS}")
        return texts

    def _train_labels(self) -> dict[str, int]:
        if self._labels is None:
            from core.run.baselines import _labeled_split

            split = _labeled_split(self.cfg.dataset, "train_label")
            self._labels = dict(zip(split.ids, split.labels(), strict=True))
        return self._labels

    def _train(self, request: dict[str, Any]) -> str:
        from core.common.errors import UserError
        from core.engine import train_and_predict
        from core.engine.prompts import RAW_TEXT_FIELD
        from core.run.baselines import baseline_config

        texts = self._texts(request)
        try:
            labels = self._train_labels()
        except UserError as exc:
            raise Refused(f"no train_label ground truth on the trusted side ({exc})") from None
        row_of = {k: k if k in labels else k.split("#", 1)[0] for k in texts}
        unknown = [k for k, rid in row_of.items() if rid not in labels]
        if unknown:
            rid = row_of[unknown[0]]
            where = "a train_unlabel or test id" if rid in self.predict_ids else "not a train_label id of this run"
            raise Refused(f"train: {unknown[0][:80]!r} is {where}; a judge trains on train_label ids only "
                          "(keys are '<row id>' or '<row id>#<suffix>')")
        per_row: dict[str, int] = {}
        for rid in row_of.values():
            per_row[rid] = per_row.get(rid, 0) + 1
        crowded = next((rid for rid, n in per_row.items() if n > MAX_TEXTS_PER_TRAIN_ROW), None)
        if crowded is not None:
            raise Refused(f"train: {per_row[crowded]} texts of row {crowded[:80]!r}; at most "
                          f"{MAX_TEXTS_PER_TRAIN_ROW} per train_label row")
        if len(per_row) < MIN_TRAIN_TEXTS:
            raise Refused(f"train: {len(per_row)} train_label rows; a judge needs at least {MIN_TRAIN_TEXTS}")
        if self.counts.judges >= self.max_judges:
            raise Refused(f"judge budget spent: at most {self.max_judges} judges per run")
        self.counts.judges += 1  # an attempt counts: a failing one still costs the runner a training
        bcfg = baseline_config(self.cfg)
        if not bcfg.weak_model:
            raise Refused("this run has no weak model to train a judge with")
        ids = list(texts)
        rows = [{"id": rid, RAW_TEXT_FIELD: texts[rid]} for rid in ids]
        targets = np.asarray([labels[row_of[key]] for key in ids], dtype=np.float64)
        kept: list[Any] = []
        start = time.time()
        try:
            # the weak-artifacts call (core.run.baselines.build_weak_artifacts): same model, spec, passes
            train_and_predict(bcfg.weak_model, JUDGE_FORMAT, rows, targets, {}, bcfg, log=self.log, keep=kept.append)
        except Exception as exc:  # noqa: BLE001 - the idea gets the reason; a cancel (SystemExit) passes
            raise Refused(f"train: {_reason(exc)}") from None
        judge_id = f"judge-{self.counts.judges}"
        self._judges[judge_id] = kept[0]
        self.log(f"weak judge {judge_id}: {bcfg.weak_model} trained on {len(rows)} texts of {len(per_row)} train_label rows "
                 f"in {time.time() - start:.1f}s")
        return judge_id

    def _predict(self, request: dict[str, Any]) -> dict[str, float]:
        from core.engine.hf_backend import predict
        from core.engine.prompts import RAW_TEXT_FIELD

        judge_id = request.get("judge")
        judge = self._judges.get(judge_id) if isinstance(judge_id, str) else None
        if judge is None:
            raise Refused(f"predict: no judge {str(request.get('judge'))[:80]!r} in this run")
        texts = self._texts(request)
        for key in texts:
            rid = key if key in self.predict_ids else key.split("#", 1)[0]
            if rid in self.predict_ids:
                continue
            labels = self._labels or {}
            if rid in labels:
                raise Refused(f"predict: {key[:80]!r} is a train_label row: the judge would echo the labels it "
                              "was trained on; predict train_unlabel or test rows")
            raise Refused(f"predict: {key[:80]!r} is not a train_unlabel or test id of this run "
                          "(keys are '<row id>' or '<row id>#<suffix>')")
        if self.counts.texts + len(texts) > self.max_texts:
            raise Refused(f"text budget spent: {len(texts)} texts asked, {self.max_texts - self.counts.texts} of "
                          f"{self.max_texts} left in this run")
        self.counts.texts += len(texts)
        keys = list(texts)
        rows = [{"id": k, RAW_TEXT_FIELD: texts[k]} for k in keys]
        pbs = int(self.cfg.extra.get("predict_batch_size", max(2 * self.cfg.batch_size, 32)))
        try:
            p1 = predict(judge, judge.encoder.encode_many(rows), pbs)
        except Exception as exc:  # noqa: BLE001 - as in _train
            raise Refused(f"predict: {_reason(exc)}") from None
        return {k: float(p) for k, p in zip(keys, p1, strict=True)}


def _reason(exc: Exception) -> str:
    """One line about a failure in the engine (a ValueError is a config the user fixes; anything else
    keeps its type, e.g. a CUDA out-of-memory while the idea holds the GPU)."""
    text = (str(exc).strip().splitlines() or [""])[0][:300]
    return text if isinstance(exc, ValueError) else f"{type(exc).__name__}: {text}"


def label_free_train_label(cfg: RunConfig) -> list[dict[str, Any]]:
    """``train_label`` rows without label-revealing fields (trusted side: reads ``labeled_data/``)."""
    from core.run.baselines import _labeled_split

    split = _labeled_split(cfg.dataset, "train_label")
    return [{k: v for k, v in r.items() if k not in LABEL_REVEALING} for r in split.rows]


# --------------------------------------------------------------------------------------------
# the runner's end of the file channel


class JudgeChannel:
    """Reads request files from the idea's request folder, writes replies into the reply folder."""

    def __init__(self, service: JudgeService, requests: Path, replies: Path) -> None:
        self.service, self.requests, self.replies = service, requests, replies
        self.ignored: set[str] = set()

    def _reply(self, token: str, doc: dict[str, Any]) -> None:
        data = json.dumps(doc).encode("utf-8")
        # world-readable: the Docker sandbox may run the idea as another uid
        atomic_write_bytes(self.replies / reply_name(token), data, mode=0o644)

    def pump(self) -> bool:
        """Answer the requests that arrived (at most ``PER_PUMP``); True if any was answered."""
        try:
            dfd = os.open(self.requests, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            return False  # not there (yet), or the idea replaced it with a link: nothing to read
        answered = 0
        try:
            for name in sorted(os.listdir(dfd)):
                match = REQUEST_RE.match(name)
                if match is None or name in self.ignored:
                    continue
                if answered >= PER_PUMP:
                    break
                doc = self._read(dfd, name)
                if doc is _SKIP:
                    continue
                self._reply(match.group(1), self.service.handle(doc) if not isinstance(doc, Refused)
                            else self._refused(doc))
                answered += 1
        finally:
            os.close(dfd)
        return answered > 0

    def _refused(self, exc: Refused) -> dict[str, Any]:
        self.service.counts.requests += 1
        self.service.counts.refused += 1
        return {"ok": False, "error": str(exc)}

    def _ignore(self, name: str) -> None:
        self.ignored.add(name)
        self.service.log(f"weak judge: ignored {name[:80]!r} (not a regular file)")

    def _read(self, dfd: int, name: str) -> Any:
        """The request's JSON (a ``Refused`` when it is unusable); ``_SKIP`` for a link, a fifo or a
        file gone meanwhile: a request that is not a regular file is never read and never answered."""
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dfd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # a symbolic link
                self._ignore(name)
            return _SKIP
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                self._ignore(name)
                return _SKIP
            if st.st_size > MAX_REQUEST_BYTES:
                raw = None
            else:
                with os.fdopen(fd, "rb", closefd=False) as fh:
                    raw = fh.read(MAX_REQUEST_BYTES + 1)
        finally:
            os.close(fd)
        try:
            os.unlink(name, dir_fd=dfd)  # answered once; the request's texts need not stay on disk
        except OSError:
            self.ignored.add(name)
        if raw is None or len(raw) > MAX_REQUEST_BYTES:
            return Refused(f"request larger than {MAX_REQUEST_BYTES // 2**20} MiB")
        try:
            return json.loads(raw)
        except ValueError:
            return Refused("malformed request: not JSON (write it to a temp file, then rename)")
