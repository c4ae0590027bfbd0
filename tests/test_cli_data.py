"""``aes-ensemble data check`` and ``aes-ensemble folds`` as a user runs them: every bad input
ends in exit code 2 and one ``error:`` line naming the file, the row and the problem."""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from aes_ensemble.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
SAMPLE_TRAIN = REPO / "aes_ensemble" / "sample" / "ellipse_train.csv"
SAMPLE_TEST = REPO / "aes_ensemble" / "sample" / "ellipse_test.csv"
AES2 = ["essay_id", "full_text", "score"]
GOOD = [["e1", "First essay, with a comma.", "3"], ["e2", 'A "quoted"\nessay.', "4"]]


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def assert_error(result, *parts: str) -> None:  # type: ignore[no-untyped-def]
    """Exit 2, nothing on stdout, exactly one ``error:`` line holding every part."""
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for part in parts:
        assert part in lines[0], (part, lines[0])


BAD_FILES: dict[str, tuple[Callable[[Path], Path], list[str], tuple[str, ...]]] = {
    "missing file": (lambda d: d / "nowhere.csv", [], ("nowhere.csv", "file not found")),
    "empty file": (
        lambda d: _bytes(d / "empty.csv", b""),
        [],
        ("empty.csv", "file is empty"),
    ),
    "header only": (
        lambda d: _bytes(d / "header.csv", b"essay_id,full_text,score\n"),
        [],
        ("header.csv", "header but no essays"),
    ),
    "missing column": (
        lambda d: write_csv(d / "nocol.csv", ["essay_id", "text", "score"], GOOD),
        ["--format", "aes2"],
        ("nocol.csv", "missing required column 'full_text'", "columns: essay_id, text, score"),
    ),
    "non-numeric score": (
        lambda d: write_csv(d / "nan.csv", AES2, [*GOOD, ["e3", "Third.", "four"]]),
        [],
        ("nan.csv", "row 3", "score 'four' is not a number"),
    ),
    "missing score": (
        lambda d: write_csv(d / "noscore.csv", AES2, [GOOD[0], ["e9", "No score.", ""], GOOD[1]]),
        [],
        ("noscore.csv", "row 2", "score is missing"),
    ),
    "score off the scale": (
        lambda d: write_csv(d / "seven.csv", AES2, [*GOOD, ["e3", "Third.", "7"]]),
        [],
        ("seven.csv", "row 3", "score 7 is not a level of the scale 1-6"),
    ),
    "score between half points": (
        lambda d: write_csv(
            d / "quarter.csv",
            ["text_id_kaggle", "full_text", "prompt", "Overall"],
            [["t1", "An essay.", "p", "3.5"], ["t2", "Another.", "p", "3.25"]],
        ),
        [],
        ("quarter.csv", "row 2", "score 3.25 is not a level of the scale 1-5 in steps of 0.5"),
    ),
    "declared scale": (
        lambda d: write_csv(d / "declared.csv", AES2, [*GOOD, ["e3", "Third.", "5"]]),
        ["--scale", "1-4"],
        ("declared.csv", "row 3", "score 5 is not a level of the scale 1-4"),
    ),
    "duplicate id": (
        lambda d: write_csv(d / "dup.csv", AES2, [*GOOD, ["e1", "Again.", "2"]]),
        [],
        ("dup.csv", "row 3", "duplicate essay_id 'e1' (rows 1 and 3)"),
    ),
    "empty essay": (
        lambda d: write_csv(d / "blank.csv", AES2, [*GOOD, ["e3", "  \n ", "2"]]),
        [],
        ("blank.csv", "row 3", "essay text is empty"),
    ),
    "invalid utf-8": (
        lambda d: _bytes(
            d / "latin.csv", b"essay_id,full_text,score\ne1,fine,3\ne2,caf\xe9 au lait,4\n"
        ),
        [],
        ("latin.csv", "invalid UTF-8 at byte offset 41 (line 3)"),
    ),
}


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_data_check_rejects_bad_input(case: str, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    make, options, parts = BAD_FILES[case]
    result = run_cli("data", "check", make(tmp_path), *options)
    assert_error(result, *parts)


@pytest.mark.parametrize("case", ["non-numeric score", "duplicate id", "invalid utf-8"])
def test_folds_rejects_bad_training_file(case: str, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    make, _, parts = BAD_FILES[case]
    result = run_cli("folds", "-w", tmp_path / "ws", "--train", make(tmp_path))
    assert_error(result, *parts)
    assert not (tmp_path / "ws" / "configs" / "data.yaml").exists()


def test_training_file_without_scores_is_refused(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    path = write_csv(tmp_path / "unscored.csv", ["essay_id", "full_text"], [["a", "Text."]])
    result = run_cli("folds", "-w", tmp_path, "--train", path, "--format", "aes2")
    assert_error(result, "unscored.csv", "missing required column 'score'")


def test_test_ids_overlapping_training_ids_are_refused(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    train = write_csv(
        tmp_path / "train.csv", AES2, [[f"e{i}", f"Essay {i}.", str(i % 6 + 1)] for i in range(12)]
    )
    test = write_csv(
        tmp_path / "test.csv", ["essay_id", "full_text"], [["new", "Fresh."], ["e4", "Seen."]]
    )
    result = run_cli("folds", "-w", tmp_path, "--train", train, "--test", test)
    assert_error(result, "test.csv", "row 2", "1 test essay ids also appear", "'e4'")


def test_data_check_prints_rows_prompts_levels_lengths(run_cli) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("data", "check", SAMPLE_TRAIN)
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "480 essays (train file" in out
    assert "10 prompts" in out and "Distance learning" in out
    assert "1-5 in steps of 0.5" in out and "3.5" in out
    assert "words" in out and "chars" in out and "median" in out
    test = run_cli("data", "check", SAMPLE_TEST)
    assert test.exit_code == 0 and "(test file" in test.stdout
    assert "score levels" not in test.stdout


def test_folds_from_train_records_data_config_and_hash(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    ws = Workspace.at(tmp_path)
    first = run_cli(
        "folds", "-w", tmp_path, "--train", SAMPLE_TRAIN, "--test", SAMPLE_TEST, "--seed", "3"
    )
    assert first.exit_code == 0, first.stderr
    meta = json.loads(ws.folds_meta_path.read_text())
    assert meta["hash"] in first.stdout and meta["method"] == "grouped"
    config = yaml.safe_load(ws.data_config_path.read_text())
    assert Path(config["train"]) == SAMPLE_TRAIN.resolve()
    assert Path(config["test"]) == SAMPLE_TEST.resolve()
    assert "essays" in first.stdout and "all" in first.stdout

    again = run_cli("folds", "-w", tmp_path, "--seed", "3")
    assert again.exit_code == 0, again.stderr
    assert json.loads(ws.folds_meta_path.read_text())["hash"] == meta["hash"]

    changed = run_cli("folds", "-w", tmp_path, "--method", "stratified")
    assert_error(changed, "folds.csv", "existing OOF files would no longer match", "--force")
    forced = run_cli("folds", "-w", tmp_path, "--method", "stratified", "--force")
    assert forced.exit_code == 0, forced.stderr
    assert json.loads(ws.folds_meta_path.read_text())["method"] == "stratified"


def test_train_inside_the_workspace_is_recorded_relative(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    shutil.copy(SAMPLE_TRAIN, tmp_path / "train.csv")
    result = run_cli("folds", "-w", tmp_path, "--train", tmp_path / "train.csv", "--n-folds", "3")
    assert result.exit_code == 0, result.stderr
    assert yaml.safe_load((tmp_path / "configs" / "data.yaml").read_text()) == {
        "train": "train.csv"
    }
    assert json.loads((tmp_path / "folds.json").read_text())["n_folds"] == 3


def test_hand_edited_folds_are_refused(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    from aes_ensemble.folds import load_folds

    assert run_cli("folds", "-w", tmp_path, "--train", SAMPLE_TRAIN).exit_code == 0
    folds_csv = tmp_path / "folds.csv"
    lines = folds_csv.read_text().splitlines()
    essay, fold, prompt = lines[-1].split(",", 2)
    lines[-1] = f"{essay},{(int(fold) + 1) % 5},{prompt}"
    folds_csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(Exception, match="changed after it was saved"):
        load_folds(Workspace.at(tmp_path))


def test_folds_from_file_and_inferred_prompts(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    rows = list(csv.reader(SAMPLE_TRAIN.open(encoding="utf-8", newline="")))
    header, body = rows[0], rows[1:]
    keep = [header.index(c) for c in ("text_id_kaggle", "full_text", "Overall")]
    unprompted = write_csv(tmp_path / "aes2.csv", AES2, [[r[i] for i in keep] for r in body])
    ws_dir = tmp_path / "ws"
    result = run_cli(
        "folds", "-w", ws_dir, "--train", unprompted, "--format", "generic", "--infer-prompts", "6"
    )
    assert result.exit_code == 0, result.stderr
    with (ws_dir / "folds.csv").open(encoding="utf-8") as handle:
        saved = list(csv.DictReader(handle))
    assert {r["prompt"] for r in saved} == {f"inferred_{k}" for k in range(6)}
    by_prompt: dict[str, set[str]] = {}
    for r in saved:
        by_prompt.setdefault(r["prompt"], set()).add(r["fold"])
    assert all(len(folds) == 1 for folds in by_prompt.values())

    external = tmp_path / "mine.csv"
    external.write_text(
        "essay_id,fold\n" + "".join(f"{r['essay_id']},{i % 2}\n" for i, r in enumerate(saved))
    )
    from_file = run_cli("folds", "-w", ws_dir, "--from-file", external, "--force")
    assert from_file.exit_code == 0, from_file.stderr
    assert json.loads((ws_dir / "folds.json").read_text())["n_folds"] == 2


def test_unknown_options_are_usage_errors(tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("folds", "-w", tmp_path, "--train", SAMPLE_TRAIN, "--method", "random")
    assert_error(result, "unknown --method 'random'")
    result = run_cli("data", "check", SAMPLE_TRAIN, "--format", "elipse")
    assert_error(result, "unknown format 'elipse'", "did you mean 'ellipse'")
    result = run_cli("folds", "-w", tmp_path / "empty")
    assert_error(result, "data.yaml", "no data config")
