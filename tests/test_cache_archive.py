"""``w2s cache import/export``: the reference archive's quirks, idempotence, and unsafe archives."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from core.results.archive import ensure_demo_cache, import_archive
from tests.conftest import run_cli

SPECIAL = (tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE)
GOOD = "cache_results/demo-x_vanilla_w2s/KEY_e1_lr0.1_bs2_schlinear/seed_42.json"


def _tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    """Build a .tar.gz: (name, content) adds a file, (name, tarfile.XXXTYPE) a special member."""
    with tarfile.open(path, "w:gz") as tf:
        for name, payload in members:
            info = tarfile.TarInfo(name)
            if payload not in SPECIAL:
                info.size = len(payload)
                tf.addfile(info, io.BytesIO(payload))
            else:
                info.type = payload
                info.linkname = "/etc/passwd" if payload in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
                tf.addfile(info)
    return path


def _payload(**fields) -> bytes:
    return json.dumps({"transfer_acc": 0.6, **fields}).encode()


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def test_reference_archive_import_reports_quirks_and_is_idempotent(workspace, reference_archive, capsys):
    assert run_cli("cache", "import", str(reference_archive)) == 0
    out = capsys.readouterr().out
    cache = workspace / "cache_results"
    with tarfile.open(reference_archive) as tf:
        top_level = [m.name for m in tf.getmembers() if m.isfile() and m.name.count("/") == 3]
        stale = "cache_results/cache_results/"
        nested = [m.name for m in tf.getmembers() if m.isfile() and m.name.startswith(stale)]
    assert len(top_level) == 155 and len(nested) == 51
    assert f"imported {len(top_level)} files" in out
    assert f"skipped the stale nested tree cache_results/cache_results/ ({len(nested)} files)" in out
    assert "ignored 3 empty folders" in out and "null pgr" in out and "another idea_name" in out
    assert "math         vanilla_w2s" in out
    assert not (cache / "cache_results").exists()  # the stale copy never lands
    empty_in_archive = "Qwen_Qwen3_4B_Base_e5_lr0.0001_bs32_schlinear_task_typebinary"
    assert not (cache / "math_ue_zeroshot" / empty_in_archive).exists()
    written = sorted(str(p.relative_to(cache)) for p in cache.rglob("seed_*.json"))
    assert written == sorted(n.removeprefix("cache_results/") for n in top_level)
    with tarfile.open(reference_archive) as tf:  # byte-for-byte copies
        name = "cache_results/code_critic/" + next((cache / "code_critic").iterdir()).name + "/seed_42.json"
        assert tf.extractfile(name).read() == (cache / name.removeprefix("cache_results/")).read_bytes()
    before = {p: p.stat().st_mtime_ns for p in cache.rglob("seed_*.json")}
    assert run_cli("cache", "import", str(reference_archive)) == 0
    again = capsys.readouterr().out
    assert "imported 0 files" in again and "(155 already present)" in again
    assert {p: p.stat().st_mtime_ns for p in cache.rglob("seed_*.json")} == before


def test_differing_file_is_kept_unless_overwrite(workspace, tmp_path):
    first = _tar(tmp_path / "a.tar.gz", [(GOOD, _payload())])
    second = _tar(tmp_path / "b.tar.gz", [(GOOD, _payload(transfer_acc=0.9))])
    dest = workspace / GOOD
    import_archive(first)
    report = import_archive(second)
    assert report.n_imported == 0 and len(report.conflicts) == 1
    assert json.loads(dest.read_text())["transfer_acc"] == 0.6
    assert import_archive(second, overwrite=True).n_imported == 1
    assert json.loads(dest.read_text())["transfer_acc"] == 0.9


@pytest.mark.parametrize(
    ("bad_name", "payload", "reason"),
    [
        ("cache_results/../../escape.json", b"{}", "'..' in path"),
        ("/tmp/abs_w2s_escape.json", b"{}", "absolute path"),
        ("cache_results/math_x/k/seed_1.json", tarfile.SYMTYPE, "link"),
        ("cache_results/math_x/k/seed_2.json", tarfile.LNKTYPE, "link"),
        ("cache_results/dev", tarfile.CHRTYPE, "device"),
        ("cache_results/fifo", tarfile.FIFOTYPE, "device or fifo"),
    ],
)
def test_unsafe_archive_is_refused_and_writes_nothing(workspace, tmp_path, capsys, bad_name, payload, reason):
    archive = _tar(tmp_path / "evil.tar.gz", [(GOOD, _payload()), (bad_name, payload)])
    assert run_cli("cache", "import", str(archive)) == 1
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.count("\n") == 0 and "Traceback" not in captured.err
    assert "refused" in err and repr(bad_name) in err and reason in err and "nothing was written" in err
    assert _files(workspace) == []
    assert not (tmp_path / "escape.json").exists() and not Path("/tmp/abs_w2s_escape.json").exists()


def test_not_an_archive_and_missing_file(workspace, tmp_path, capsys):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"this is not a tarball")
    assert run_cli("cache", "import", str(junk)) == 1
    assert "not a readable tar archive" in capsys.readouterr().err
    assert run_cli("cache", "import", str(tmp_path / "missing.tar.gz")) == 1
    assert "no such file" in capsys.readouterr().err
    assert _files(workspace) == []


def test_odd_members_are_skipped_with_a_reason(workspace, tmp_path):
    archive = _tar(
        tmp_path / "odd.tar.gz",
        [
            (GOOD, _payload()),
            ("cache_results/README.txt", b"hello"),
            ("cache_results/math_x/k/seed_7.json", b"{not json"),
            ("cache_results/math_x/k/seed_8.json", b"[1, 2]"),
            ("cache_results/math_x/k/notes.json", b"{}"),
        ],
    )
    report = import_archive(archive)
    assert report.n_imported == 1
    reasons = dict(report.skipped)
    assert reasons["cache_results/math_x/k/seed_7.json"] == "invalid JSON"
    assert reasons["cache_results/math_x/k/seed_8.json"] == "not a JSON object"
    assert "cache_results/README.txt" in reasons and "cache_results/math_x/k/notes.json" in reasons


def test_export_then_import_round_trip(workspace, tmp_path, capsys, monkeypatch):
    files = [
        ("cache_results/alpha_vanilla_w2s/K_e1_lr0.1_bs2_schlinear/seed_42.json", _payload()),
        ("cache_results/alpha_weak_artifacts/W_e1_lr0.1_bs2_schlinear/seed_42.json", b'{"weak_acc": 0.5}'),
        ("cache_results/beta_vanilla_w2s/K_e1_lr0.1_bs2_schlinear/seed_43.json", _payload(pgr=None)),
    ]
    import_archive(_tar(tmp_path / "in.tar.gz", files))
    out = tmp_path / "out" / "alpha.tar.gz"
    assert run_cli("cache", "export", str(out), "--dataset", "alpha") == 0
    assert "wrote 2 files" in capsys.readouterr().out
    with tarfile.open(out) as tf:
        assert sorted(tf.getnames()) == sorted(n for n, _ in files[:2])
        assert tf.extractfile(files[0][0]).read() == files[0][1]
    assert run_cli("cache", "export", str(tmp_path / "none.tar.gz"), "--dataset", "gamma") == 1
    assert "nothing to export" in capsys.readouterr().err
    other = tmp_path / "other_ws"
    other.mkdir()
    monkeypatch.setenv("W2S_WORKSPACE", str(other))
    assert run_cli("cache", "import", str(out)) == 0
    assert sorted(str(p.relative_to(other)) for p in other.rglob("*.json")) == sorted(n for n, _ in files[:2])
    assert (other / files[0][0]).read_bytes() == files[0][1]
    assert not (other / files[2][0]).exists()


def test_ensure_demo_cache_unpacks_once(workspace, tmp_path):
    archive = _tar(tmp_path / "demo.tar.gz", [(GOOD, _payload())])
    cache = workspace / "cache_results"
    assert ensure_demo_cache(archive=archive) is True
    assert (workspace / GOOD).is_file()
    assert ensure_demo_cache(archive=archive) is False  # already there: untouched
    (workspace / GOOD).unlink()
    assert ensure_demo_cache(archive=archive) is False and not (workspace / GOOD).exists()
    assert [p.name for p in workspace.iterdir()] == [cache.name]  # no leftover temp folders


def test_ensure_demo_cache_ignores_missing_or_unsafe_archive(workspace, tmp_path):
    assert ensure_demo_cache(archive=tmp_path / "absent.tar.gz") is False
    evil = _tar(tmp_path / "evil.tar.gz", [(GOOD, _payload()), ("../x.json", b"{}")])
    assert ensure_demo_cache(archive=evil) is False
    assert _files(workspace) == []


def test_oversized_archive_is_refused(workspace, tmp_path, monkeypatch, capsys):
    import core.results.archive as ca

    monkeypatch.setattr(ca, "MAX_TOTAL_BYTES", 10)
    archive = _tar(tmp_path / "big.tar.gz", [(GOOD, _payload())])
    assert run_cli("cache", "import", str(archive)) == 1
    assert "more than 10 bytes unpacked" in capsys.readouterr().err and _files(workspace) == []


def test_archive_without_top_folder_lands_in_the_cache(workspace, tmp_path):
    bare = GOOD.removeprefix("cache_results/")
    assert import_archive(_tar(tmp_path / "bare.tar.gz", [(bare, _payload())])).n_imported == 1
    assert (workspace / "cache_results" / bare).is_file()


def test_truncated_archive_writes_nothing(workspace, tmp_path, capsys):
    whole = _tar(tmp_path / "whole.tar.gz", [(GOOD, _payload(pad="x" * 50000))]).read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    assert run_cli("cache", "import", str(cut)) == 1
    err = capsys.readouterr().err
    assert "corrupt" in err or "not a readable" in err
    assert _files(workspace) == []


def test_kept_predictions_travel_with_their_seed_and_bombs_are_skipped(workspace, tmp_path, monkeypatch):
    import gzip

    seed = "cache_results/alpha_vanilla_w2s/K_e1_lr0.1_bs2_schlinear/seed_42.json"
    kept = seed.replace("seed_42.json", "predictions_seed_42.json.gz")
    preds = gzip.compress(json.dumps({"r1": 0.9, "r2": 0.1}).encode(), mtime=0)
    bomb = gzip.compress(b"[" + b"0," * (40 * 1024 * 1024) + b"0]", mtime=0)  # 80 MB unzipped
    report = import_archive(_tar(tmp_path / "in.tar.gz", [
        (seed, _payload(w2s_source="referee")), (kept, preds),
        (kept.replace("42", "43"), bomb), (kept.replace("42", "44"), b"not gzip"),
    ]))
    assert (workspace / kept).read_bytes() == preds
    assert not (workspace / kept.replace("42", "43")).exists() and not (workspace / kept.replace("42", "44")).exists()
    reasons = dict(report.skipped)
    assert "unzips to more than" in reasons[kept.replace("42", "43")]
    assert reasons[kept.replace("42", "44")] == "not a gzip file"
    out = tmp_path / "out.tar.gz"
    assert run_cli("cache", "export", str(out)) == 0
    with tarfile.open(out) as tf:
        assert sorted(tf.getnames()) == sorted([seed, kept]) and tf.extractfile(kept).read() == preds


# ---------------------------------------------------------------------------------- archive bombs


def _many_members(path: Path, n: int) -> Path:
    """``n`` empty seed files in one .tar.gz: a few hundred KB that would unpack into ``n`` files."""
    with tarfile.open(path, "w:gz", compresslevel=1) as tf:
        for i in range(n):
            info = tarfile.TarInfo(f"cache_results/demo-math_bomb/k{i}/seed_42.json")
            tf.addfile(info, io.BytesIO(b""))
    return path


def _huge_members(path: Path, sizes: list[int]) -> Path:
    """Seed members of ``sizes`` zero bytes, written as a multi-member gzip of one small compressed
    chunk repeated, so a 250 MB member costs a few hundred KB on disk and no time to build."""
    import gzip

    chunk = 1 << 20
    zeros = gzip.compress(b"\0" * chunk, compresslevel=9)
    with open(path, "wb") as out:
        for i, size in enumerate(sizes):
            info = tarfile.TarInfo(f"cache_results/demo-math_bomb/k{i}/seed_42.json")
            info.size = size
            out.write(gzip.compress(info.tobuf(format=tarfile.GNU_FORMAT)))
            for _ in range(size // chunk):
                out.write(zeros)
            rest = size % chunk + (-size) % 512  # the member's tail, padded to a tar block
            out.write(gzip.compress(b"\0" * rest))
        out.write(gzip.compress(b"\0" * 1024))  # end-of-archive blocks
    return path


def test_archive_of_50000_members_is_refused_before_writing(workspace, tmp_path, capsys):
    import time

    archive = _many_members(tmp_path / "many.tar.gz", 50_000)
    assert archive.stat().st_size < 2_000_000
    start = time.monotonic()
    assert run_cli("cache", "import", str(archive)) == 1
    took = time.monotonic() - start
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "more than 20000 members" in err and "nothing was written" in err
    assert _files(workspace) == [] and took < 10


def test_archive_of_huge_json_members_is_refused_from_the_header(workspace, tmp_path, capsys):
    import resource
    import time

    archive = _huge_members(tmp_path / "huge.tar.gz", [250 * 1024 * 1024] * 4)
    assert archive.stat().st_size < 2_000_000
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    assert run_cli("cache", "import", str(archive)) == 1
    took = time.monotonic() - start
    grew_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "larger than 33554432 bytes" in err, err
    assert _files(workspace) == [] and took < 10 and grew_kb < 100_000


def test_member_sizes_and_total_are_capped_before_anything_is_written(workspace, tmp_path, monkeypatch, capsys):
    import core.results.archive as ca

    good = _tar(tmp_path / "ok.tar.gz", [(GOOD, _payload())])
    monkeypatch.setattr(ca, "MAX_SEED_BYTES", 10)
    with pytest.raises(ca.ArchiveError, match="a seed result is at most 10"):
        import_archive(good)
    monkeypatch.setattr(ca, "MAX_SEED_BYTES", 1 << 20)
    monkeypatch.setattr(ca, "MAX_MEMBERS", 1)
    two = _tar(tmp_path / "two.tar.gz", [(GOOD, _payload()), (GOOD.replace("seed_42", "seed_43"), _payload())])
    with pytest.raises(ca.ArchiveError, match="more than 1 members"):
        import_archive(two)
    assert _files(workspace) == []
    assert import_archive(good).n_imported == 1  # within the caps it imports as before
