"""Fit reliability (issue 13): a failed or killed fit never harms the last good fold, changed
data is refitted, damaged records and full disks fail cleanly, file modes follow the umask.

Runs on a slice of the embedded ELLIPSE sample with cheap learners; the fault hooks are in
``tests/faults.py``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import polars as pl
import pytest
from conftest import CliResult
from faults import fail_writes, make_read_only, reachable_folder, run_killed, run_read_only

from aes_ensemble.data import data_fingerprint, load_workspace_dataset
from aes_ensemble.engine import fit_learner
from aes_ensemble.errors import AesError
from aes_ensemble.features import handcrafted, pipeline
from aes_ensemble.fold_files import part_path
from aes_ensemble.fold_fit import RunSummary
from aes_ensemble.folds import assign_folds, save_folds
from aes_ensemble.io import ensure_writable, owner_tag, write_text_atomic
from aes_ensemble.learners.linear import RidgeConfig
from aes_ensemble.library_errors import library_error
from aes_ensemble.native_stderr import lightgbm_stderr
from aes_ensemble.sample import TEST, TRAIN, sample_path
from aes_ensemble.store import read_prediction_meta, read_predictions
from aes_ensemble.workspace import Workspace

TFIDF = "  tfidf: {word_ngram_range: [1, 1], char_ngram_range: null, max_features: 300}\n"
RIDGE = "kind: ridge\nfeatures:\n  handcrafted: false\n" + TFIDF + "params: {alpha: 10.0}\n"
LGBM = (
    "kind: lgbm\nfeatures:\n  handcrafted: false\n"
    + TFIDF
    + "  svd_components: 8\nparams: {n_estimators: 20, learning_rate: 0.2, num_leaves: 7}\n"
)
XGB = (
    "kind: xgb\nfeatures:\n  handcrafted: false\n"
    + TFIDF
    + "  svd_components: 8\nparams: {n_estimators: 20, learning_rate: 0.2, max_depth: 3}\n"
)
CLI = [sys.executable, "-m", "aes_ensemble.cli.main"]
TEMPORARY = re.compile(r"\.(tmp|old|staged)$")

MakeWorkspace = Callable[..., Path]


def build_workspace(root: Path, n: int = 120, n_test: int = 20) -> Path:
    """A workspace on the first ``n`` sample essays (and ``n_test`` test essays), 3 folds."""
    (root / "configs").mkdir(parents=True)
    pl.read_csv(sample_path(TRAIN), infer_schema=False).head(n).write_csv(root / "essays.csv")
    pl.read_csv(sample_path(TEST), infer_schema=False).head(n_test).write_csv(root / "test.csv")
    (root / "configs" / "data.yaml").write_text(
        "train: essays.csv\ntest: test.csv\nformat: ellipse\n", encoding="utf-8"
    )
    for name, text in {"ridge": RIDGE, "lgbm": LGBM, "xgb": XGB}.items():
        (root / "configs" / f"{name}.yaml").write_text(text, encoding="utf-8")
    ws = Workspace.at(root)
    train, _ = load_workspace_dataset(ws)
    save_folds(ws, assign_folds(train, 3, seed=0))
    return root


@pytest.fixture
def sample_ws(tmp_path: Path) -> MakeWorkspace:
    return lambda name="ws": build_workspace(tmp_path / name)


def snapshot(root: Path, *folders: str) -> dict[str, bytes]:
    """Every file under ``folders`` of ``root``, by relative path, with its bytes."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for folder in folders
        for p in sorted((root / folder).rglob("*"))
        if p.is_file()
    }


def temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*") if TEMPORARY.search(p.name)]


def fit(root: Path, name: str = "ridge", **kwargs: Any) -> RunSummary:
    return fit_learner(root, name, progress=False, **kwargs)


# --- 1, 2: a fit the library refuses leaves the last good fold byte-identical ---------------


def test_refused_parameter_is_one_line_and_keeps_the_fold(
    sample_ws: MakeWorkspace, run_cli: Callable[..., CliResult]
) -> None:
    root = sample_ws()
    fit(root, "lgbm")
    before = snapshot(root, "base_models", "oof")
    result = run_cli("fit-base", "lgbm", "params.num_leaves=0", "-w", root, "--no-progress")
    assert result.exit_code == 2
    err = result.stderr
    assert "Traceback" not in err and err.count("error: ") == 1
    assert err.splitlines()[-1] == (
        "error: lgbm fold 0: LightGBM refused params.num_leaves=0: Check failed: (num_leaves) > (1)"
    )
    assert snapshot(root, "base_models", "oof") == before
    assert temporaries(root) == []


def test_lightgbm_s_own_fatal_line_stays_off_stderr(
    sample_ws: MakeWorkspace, capfd: pytest.CaptureFixture[str]
) -> None:
    """LightGBM's C++ writes ``[LightGBM] [Fatal] ...`` to descriptor 2 itself, so this captures
    descriptors, not ``sys.stderr``: the user sees our error line with its reason, not both."""
    from aes_ensemble.cli.main import main

    root = sample_ws()
    capfd.readouterr()
    args = ["fit-base", "lgbm", "params.num_leaves=1", "--fold", "0", "-w", str(root)]
    code = main([*args, "--no-progress"])
    out, err = capfd.readouterr()
    assert code == 2 and out == ""
    assert "[LightGBM]" not in err and err.count("error: ") == 1
    *stages, last = err.splitlines()
    assert all(line.startswith("lgbm: fold 0: ") for line in stages), err
    assert last == (
        "error: lgbm fold 0: LightGBM refused params.num_leaves=1: Check failed: (num_leaves) > (1)"
    )


def test_other_stderr_output_passes_through_a_lightgbm_call(
    capfd: pytest.CaptureFixture[str],
) -> None:
    capfd.readouterr()
    with pytest.raises(lgb.basic.LightGBMError), lightgbm_stderr():
        os.write(2, b"ours, before\n")
        lgb.train({"num_leaves": 1, "verbosity": -1}, lgb.Dataset(np.zeros((8, 1)), np.zeros(8)))
    with lightgbm_stderr():
        print("ours, inside", file=sys.stderr)
    assert capfd.readouterr().err == "ours, before\nours, inside\n"


@pytest.mark.parametrize(
    ("name", "override", "message"),
    [
        (
            "ridge",
            "params.alpha=-1",
            "ridge fold 0: scikit-learn refused params.alpha=-1.0: The 'alpha'",
        ),
        ("xgb", "params.max_depth=-2", "xgb fold 0: XGBoost refused params.max_depth=-2: value -2"),
    ],
)
def test_library_errors_name_learner_fold_and_key(
    sample_ws: MakeWorkspace, name: str, override: str, message: str
) -> None:
    root = sample_ws()
    with pytest.raises(AesError) as caught:
        fit(root, name, overrides=[override])
    assert str(caught.value).startswith(message)
    assert not (root / "base_models" / name / "fold_0").exists()


def test_our_own_errors_are_not_taken_for_a_library_s() -> None:
    config = RidgeConfig.model_validate({"kind": "ridge", "features": {}})
    try:
        int("not a number")  # a ValueError raised by our code, not inside a library
    except ValueError as exc:
        assert library_error(exc, "ridge fold 0", config) is None


def test_torch_and_transformers_errors_are_one_line_with_the_key_or_fix() -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from aes_ensemble.learners.transformer.config import TransformerConfig

    missing = "/nowhere/deberta-v3-bas"
    config = TransformerConfig.model_validate(
        {"kind": "transformer", "model": {"pretrained_model_name_or_path": missing}}
    )
    oom = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    assert str(library_error(oom, "deberta fold 3", config)) == (
        "deberta fold 3: PyTorch ran out of memory "
        "(CUDA out of memory. Tried to allocate 2.00 GiB); "
        "lower the batch size or the maximum length in the config"
    )
    with pytest.raises(OSError) as caught:
        transformers.AutoTokenizer.from_pretrained(missing)
    error = library_error(caught.value, "deberta fold 0", config)
    assert str(error).startswith(
        f"deberta fold 0: Transformers refused model.pretrained_model_name_or_path={missing}: "
    )
    assert "\n" not in str(error)


# --- 3: the data fingerprint --------------------------------------------------------------


def test_edited_scores_refit_every_fold_and_say_why(
    sample_ws: MakeWorkspace, run_cli: Callable[..., CliResult]
) -> None:
    root = sample_ws()
    fit(root)
    essays = pl.read_csv(root / "essays.csv", infer_schema=False)
    flipped = essays.with_columns(
        pl.when(pl.col("Overall") == "3")
        .then(pl.lit("3.5"))
        .otherwise(pl.col("Overall"))
        .alias("Overall")
    )
    assert not flipped.equals(essays)
    flipped.write_csv(root / "essays.csv")
    again = run_cli("fit-base", "ridge", "-w", root, "--no-progress")
    assert again.exit_code == 0 and again.stdout.count("fitted") == 3, again.stderr
    assert again.stderr.count("on other data (training essays changed); refitting") == 3
    ws = Workspace.at(root)
    expected = data_fingerprint(*load_workspace_dataset(ws))
    assert read_prediction_meta(ws.oof_path("ridge")).data_hash == expected
    assert read_prediction_meta(part_path(ws, "ridge", 1)).data_hash == expected
    assert json.loads((ws.model_dir("ridge", 2) / "done.json").read_text())["data_hash"] == expected


def test_edited_test_essays_refit_and_say_why(sample_ws: MakeWorkspace) -> None:
    root = sample_ws()
    fit(root)
    test = pl.read_csv(root / "test.csv", infer_schema=False)
    test.with_columns(pl.col("full_text") + " Edited.").write_csv(root / "test.csv")
    again = fit(root)
    assert sum("test essays changed" in n for n in again.notes) == 3


# --- 4: a damaged done.json -----------------------------------------------------------------


def test_damaged_done_json_refits_that_fold_and_names_the_file(sample_ws: MakeWorkspace) -> None:
    root = sample_ws()
    fit(root)
    done = Workspace.at(root).model_dir("ridge", 1) / "done.json"
    good = json.loads(done.read_text(encoding="utf-8"))
    damages: dict[str, bytes | str] = {
        "is not UTF-8 text": b'{"fold": 1, "run_id": "\xff\xfe"}',
        "is not JSON": b'{"fold": 1,',
        "key 'run_id': missing": json.dumps({k: v for k, v in good.items() if k != "run_id"}),
        "key 'qwk': must be of type float": json.dumps({**good, "qwk": "high"}),
        "is not a JSON object": "[1, 2]",
        "key 'feature_versions': must map": json.dumps({**good, "feature_versions": ["hc-1"]}),
        "key 'feature_versions': missing": json.dumps(
            {k: v for k, v in good.items() if k != "feature_versions"}
        ),
    }
    for expected, damaged in damages.items():
        done.write_bytes(damaged.encode() if isinstance(damaged, str) else damaged)
        again = fit(root)
        assert [r.status for r in again.folds] == ["skipped", "fitted", "skipped"], expected
        note = next(n for n in again.notes if n.startswith("fold 1"))
        assert note.startswith(f"fold 1: {done}") and expected in note, note
        assert note.endswith("refitting"), note


def test_changed_feature_definitions_refit_every_fold_and_say_why(
    sample_ws: MakeWorkspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The config is unchanged, but an upgrade redefined a feature block its folds were fitted
    on: the folds are stale. A record from before records carried versions counts as the first
    versions, so an upgrade alone refits nothing."""
    root = sample_ws()
    config = "kind: ridge\nfeatures: {handcrafted: true}\nparams: {alpha: 10.0}\n"
    (root / "configs" / "ridge_hc.yaml").write_text(config, encoding="utf-8")
    assert fit(root).folds[0].status == "fitted"
    done = Workspace.at(root).model_dir("ridge", 0) / "done.json"
    assert json.loads(done.read_text(encoding="utf-8"))["feature_versions"] == {}
    fit(root, "ridge_hc")
    done = Workspace.at(root).model_dir("ridge_hc", 0) / "done.json"
    record = json.loads(done.read_text(encoding="utf-8"))
    assert record["feature_versions"] == {"handcrafted": handcrafted.HANDCRAFTED_VERSION}
    for module in (handcrafted, pipeline):
        monkeypatch.setattr(module, "HANDCRAFTED_VERSION", "hc-next")
    assert [r.status for r in fit(root).folds] == ["skipped"] * 3  # uses no handcrafted block
    again = fit(root, "ridge_hc")
    assert [r.status for r in again.folds] == ["fitted"] * 3
    assert (
        "fold 0 was fitted with other feature definitions (handcrafted hc-1 -> hc-next); "
        "refitting" in again.notes
    ), again.notes
    assert json.loads(done.read_text(encoding="utf-8"))["feature_versions"] == {
        "handcrafted": "hc-next"
    }
    assert [r.status for r in fit(root, "ridge_hc").folds] == ["skipped"] * 3


# --- 5: a read-only workspace fails before any work -------------------------------------------


def test_ensure_writable_creates_the_folder(tmp_path: Path) -> None:
    ensure_writable(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").is_dir() and list((tmp_path / "a" / "b").iterdir()) == []


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    with reachable_folder() as folder:
        yield folder


def test_read_only_workspace_fails_in_one_line_before_fitting(shared_dir: Path) -> None:
    root = build_workspace(shared_dir / "ws")
    make_read_only(root)
    result = run_read_only([*CLI, "fit-base", "ridge", "-w", root, "--no-progress"], shared_dir)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert f"{root / 'base_models' / 'ridge'}: cannot write here (read-only" in result.stderr
    assert not (root / "base_models").exists() and not (root / "cache").exists()


# --- 6: a full disk during a write ------------------------------------------------------------


@pytest.mark.parametrize("target", ["fold_0.parquet", "done.json", "config.yaml", "ridge.parquet"])
def test_full_disk_keeps_the_previous_files(
    sample_ws: MakeWorkspace, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    root = sample_ws()
    fit(root)
    before = snapshot(root, "base_models", "oof")
    failed = fail_writes(monkeypatch, target)
    with pytest.raises(AesError, match=r"No space left on device.*previous files are kept"):
        fit(root, overrides=["params.alpha=3"])
    assert failed, f"no write of {target} was attempted"
    after = snapshot(root, "base_models", "oof")
    if target == "ridge.parquet":  # the folds were refitted; the assembled file failed
        assert after["oof/ridge.parquet"] == before["oof/ridge.parquet"]
    else:
        assert after == before
    assert temporaries(root) == []


# --- 7: file modes ------------------------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_written_files_follow_the_umask(sample_ws: MakeWorkspace, umask: int) -> None:
    root = sample_ws()
    old = os.umask(umask)
    try:
        fit(root)
        write_text_atomic(root / "plain.txt", "x")
    finally:
        os.umask(old)
    ws = Workspace.at(root)
    files = [
        ws.oof_path("ridge"),
        part_path(ws, "ridge", 0),
        ws.model_dir("ridge", 0) / "done.json",
        ws.model_dir("ridge", 0) / "config.yaml",
        root / "plain.txt",
    ]
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in files} == {
        p.name: oct(0o666 & ~umask) for p in files
    }
    assert oct(ws.model_dir("ridge", 0).stat().st_mode & 0o777) == oct(0o777 & ~umask)


# --- 8: leftovers of killed runs ------------------------------------------------------------------


@pytest.mark.parametrize(("nth", "where"), [(1, "oof/parts/ridge"), (2, "oof")])
def test_kill_mid_write_leaves_temporaries_that_the_next_run_removes(
    sample_ws: MakeWorkspace, nth: int, where: str
) -> None:
    root = sample_ws()
    fit(root, folds=[0, 1])
    # Parquet write 1 is fold 2's part, write 2 the assembled file: killed right after each.
    run_killed(
        ["fit-base", "ridge", "-w", root, "--fold", "2", "--no-progress"],
        "pyarrow.parquet:write_table",
        nth=nth,
        when="after",
    )
    assert [p for p in temporaries(root) if str(p.parent).endswith(where)], temporaries(root)
    again = fit(root)
    assert temporaries(root) == []
    assert again.oof_path is not None


def test_kill_in_a_learner_s_save_resumes_bit_identical(sample_ws: MakeWorkspace) -> None:
    root, reference = sample_ws("killed"), sample_ws("reference")
    fit(reference)
    run_killed(
        ["fit-base", "ridge", "-w", root, "--no-progress"],
        "aes_ensemble.learners.linear:RidgeLearner.save",
        nth=2,
    )
    assert not (root / "base_models" / "ridge" / "fold_1").exists() and temporaries(root)
    again = fit(root)
    assert [r.status for r in again.folds] == ["skipped", "fitted", "fitted"]
    assert temporaries(root) == []
    oof = [read_predictions(Workspace.at(r).oof_path("ridge")).frame for r in (root, reference)]
    assert oof[0].equals(oof[1])


def test_leftovers_of_a_live_process_are_kept(sample_ws: MakeWorkspace) -> None:
    root = sample_ws()
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    host = owner_tag().rsplit("-", 1)[0]
    parts = root / "oof" / "parts" / "ridge"
    parts.mkdir(parents=True)
    live = parts / f".fold_1.parquet.{owner_tag()}.abcd1234.tmp"
    dead = parts / f".fold_1.parquet.{host}-{gone.stdout.strip()}.abcd1234.tmp"
    for path in (live, dead):
        path.write_bytes(b"half")
    fit(root, folds=[0])
    assert live.exists() and not dead.exists()


def test_kill_between_moving_the_old_fold_aside_and_the_new_one_in(
    sample_ws: MakeWorkspace,
) -> None:
    root = sample_ws()
    fit(root)
    before = snapshot(root, "base_models", "oof")
    run_killed(
        ["fit-base", "ridge", "params.alpha=3", "-w", root, "--no-progress"],
        "aes_ensemble.fold_files:_promote",
    )
    assert not (root / "base_models" / "ridge" / "fold_0").exists()  # the window is real
    again = fit(root)
    assert [r.status for r in again.folds] == ["skipped"] * 3
    assert any("put back" in n for n in again.notes)
    assert snapshot(root, "base_models", "oof") == before
    assert temporaries(root) == []


def test_kill_between_the_new_folder_and_its_part_completes_the_swap(
    sample_ws: MakeWorkspace,
) -> None:
    root = sample_ws()
    fit(root)
    run_killed(
        ["fit-base", "ridge", "params.alpha=3", "-w", root, "--no-progress"],
        "aes_ensemble.fold_files:_publish_part",
    )
    again = fit(root, overrides=["params.alpha=3"])
    assert [r.status for r in again.folds] == ["skipped", "fitted", "fitted"]
    assert any("completed the replacement" in n for n in again.notes)
    assert temporaries(root) == []


# --- issue 14: time the user waited; a rerun that fits nothing rewrites nothing -------------------


def test_timing_is_recorded_and_an_up_to_date_rerun_rewrites_nothing(
    sample_ws: MakeWorkspace, run_cli: Callable[..., CliResult]
) -> None:
    root = sample_ws()
    handcrafted = "features.handcrafted=true"  # prepared once per essay, before the folds
    first = run_cli("fit-base", "ridge", handcrafted, "-w", root, "--no-progress")
    assert first.exit_code == 0 and "wrote" in first.stdout
    assert "fit s" in first.stdout and "feature preparation" in first.stdout
    ws = Workspace.at(root)
    meta = read_prediction_meta(ws.oof_path("ridge"))
    timing = meta.extra["timing"]
    assert set(timing) == {"prepare", "fit", "predict"} and timing["prepare"] > 0
    assert set(timing["fit"]) == set(timing["predict"]) == {"0", "1", "2"}
    for k in ("0", "1", "2"):
        assert meta.fit_seconds[k] == pytest.approx(
            timing["fit"][k] + timing["predict"][k], abs=2e-3
        )
    stamp = ws.oof_path("ridge").stat().st_mtime_ns
    again = run_cli("fit-base", "ridge", handcrafted, "-w", root, "--no-progress")
    assert again.exit_code == 0 and again.stdout.count("skipped") == 3
    assert "wrote" not in again.stdout and "up to date" in again.stdout
    assert ws.oof_path("ridge").stat().st_mtime_ns == stamp
