"""Progress of long steps: plain lines when stderr is not a terminal (a log file, CI,
``--no-progress``), a bar with counts, rate and time left on a terminal; stdout stays clean."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest

from aes_ensemble.progress import Display, step
from aes_ensemble.sample import TEST, TRAIN, sample_path

REPO = Path(__file__).resolve().parents[1]
EMBED_SIX = textwrap.dedent(
    """
    from aes_ensemble.data import read_essays
    from aes_ensemble.features import EmbeddingConfig, embed_texts
    from aes_ensemble.sample import TRAIN, sample_path

    essays = read_essays(sample_path(TRAIN), data_format="ellipse")
    texts = sorted(essays.texts, key=len)[:6]
    vectors = embed_texts(texts, EmbeddingConfig(batch_size=1), progress=True)
    print(vectors.shape)
    """
)


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter whose stdout and stderr are pipes (not a terminal)."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={**os.environ, "AES_PROGRESS_SECONDS": "0", **env},
    )


@pytest.mark.slow  # loads MiniLM in a fresh interpreter
def test_embeddings_piped_print_plain_lines_with_count_rate_and_eta() -> None:
    result = _python(EMBED_SIX)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "(6, 384)\n"  # progress never reaches stdout
    lines = result.stderr.splitlines()
    running = [
        line
        for line in lines
        if re.fullmatch(r"embeddings \d/6 essays \(\d+%\), [\d.]+ essays/s, ETA \d+ s", line)
    ]
    assert len(running) >= 2, result.stderr
    assert re.search(r"^embeddings 6/6 essays in \d+ s \([\d.]+ essays/s\)$", result.stderr, re.M)
    assert "\r" not in result.stderr  # no carriage-return bars (the model's loading) in a log


@pytest.mark.slow  # loads MiniLM in a fresh interpreter
def test_embeddings_on_a_terminal_draw_a_bar_with_count_rate_and_eta() -> None:
    result = _python(EMBED_SIX, FORCE_COLOR="1", TTY_COMPATIBLE="1", COLUMNS="120")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "(6, 384)\n"
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", result.stderr)
    assert re.search(r"embeddings .*━.* 6/6 essays [\d.]+ essays/s, ETA \d:\d\d:\d\d", plain)
    assert not re.search(r"^embeddings \d/6 essays \(", plain, re.M)  # no plain lines


def test_plain_display_reports_stages_folds_notes_and_nested_steps(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AES_PROGRESS_SECONDS", "0")
    display = Display("svr_emb", 2, enabled=True)  # stderr is captured: not a terminal
    with display.running():
        display.stage(0, "per-essay features for all essays")
        with step("embeddings", 4) as shown:
            for _ in range(4):
                shown.advance()
        display.note("fold 1 was left unfinished; refitting from scratch")
        display.advance()
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == "svr_emb: fold 0: per-essay features for all essays"
    assert re.fullmatch(r"svr_emb: embeddings 1/4 essays \(25%\), .* essays/s, ETA \d+ s", lines[1])
    assert len([line for line in lines if line.startswith("svr_emb: embeddings ")]) == 4
    assert "svr_emb: fold 1 was left unfinished; refitting from scratch" in lines
    assert re.fullmatch(r"svr_emb: 1/2 folds done \(\d+ s\)", lines[-1])
    assert display.notes == ["fold 1 was left unfinished; refitting from scratch"]


def test_a_quick_step_stays_silent_and_a_note_shows_when_made_without_progress(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AES_PROGRESS_SECONDS", "60")
    display = Display("ridge", 1, enabled=False)
    with display.running():
        with step("handcrafted features", 3) as shown:
            shown.advance(3)
        assert capsys.readouterr().err == ""
        display.note("fold 0 was fitted with another config; refitting")
        # Before the refit it announces starts, not after every fold has finished.
        assert (
            capsys.readouterr().err == "ridge: fold 0 was fitted with another config; refitting\n"
        )
    assert display.notes == ["fold 0 was fitted with another config; refitting"]


def _sample_workspace(root: Path, n: int = 45) -> Path:
    """A workspace on the first ``n`` essays of the embedded sample, 3 prompt-grouped folds."""
    from aes_ensemble.data import load_workspace_dataset
    from aes_ensemble.folds import assign_folds, save_folds
    from aes_ensemble.workspace import Workspace

    (root / "configs").mkdir(parents=True)
    pl.read_csv(sample_path(TRAIN), infer_schema=False).head(n).write_csv(root / "train.csv")
    pl.read_csv(sample_path(TEST), infer_schema=False).head(10).write_csv(root / "test.csv")
    (root / "configs" / "data.yaml").write_text(
        "train: train.csv\ntest: test.csv\nformat: ellipse\n", encoding="utf-8"
    )
    ws = Workspace.at(root)
    train, _ = load_workspace_dataset(ws)
    save_folds(ws, assign_folds(train, 3, seed=0))
    return root


def test_fit_base_without_progress_prints_plain_lines_before_its_table(tmp_path: Path) -> None:
    """``fit-base --no-progress`` into a pipe: the folds' lines as they happen, then the table."""
    root = _sample_workspace(tmp_path / "ws")
    script = Path(sys.executable).parent / "aes-ensemble"
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "aes_ensemble.cli.main"]
    result = subprocess.run(
        [*command, "fit-base", "ridge_tfidf", "-w", str(root), "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # one stream, in the order things were written
        text=True,
        timeout=300,
        env={**os.environ, "AES_PROGRESS_SECONDS": "0", "COLUMNS": "120"},
    )
    assert result.returncode == 0, result.stdout
    lines = result.stdout.splitlines()
    table = next(i for i, line in enumerate(lines) if "ridge_tfidf (" in line)
    before = lines[:table]
    assert any(re.fullmatch(r"ridge_tfidf: fold 0: .*", line) for line in before), before
    assert any(re.fullmatch(r"ridge_tfidf: 3/3 folds done \(\d+ s\)", line) for line in before)
    assert any(line.startswith("ridge_tfidf: handcrafted features ") for line in before), before
    assert any(line.startswith("ridge_tfidf: TF-IDF fit (") for line in before), before


def test_bench_says_when_each_learner_starts_and_labels_its_qwk(tmp_path: Path) -> None:
    """``python -m bench``'s quality loop on a small workspace, output piped as in a log."""
    root = _sample_workspace(tmp_path / "ws", n=60)
    code = textwrap.dedent(
        f"""
        from bench.__main__ import quality
        from aes_ensemble.workspace import Workspace
        quality(Workspace.at({str(root)!r}), ["ridge_tfidf"], ["ridge"])
        """
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    assert out[0] == "  ridge_tfidf: fitting"
    assert re.fullmatch(r"  ridge_tfidf: OOF QWK \(plain-rounded\) -?\d\.\d{4}, \d+ s", out[1])
    assert out[2] == "  stack ridge: nested CV with cross-fitted thresholds"
    assert re.fullmatch(
        r"  stack ridge: QWK \(cross-fitted thresholds\) -?\d\.\d{4} \[.*\], \d+ s", out[3]
    )
    assert re.search(r"^ridge_tfidf: fold 0: ", result.stderr, re.M)  # progress while it runs
    assert re.search(r"^ridge_tfidf: 3/3 folds done", result.stderr, re.M)
