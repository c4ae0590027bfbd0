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
    "literal NaN score": (
        lambda d: write_csv(d / "nan_cell.csv", AES2, [*GOOD, ["e3", "Third.", "NaN"]]),
        [],
        ("nan_cell.csv", "row 3", "score is missing ('NaN')"),
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
    "second rating off the scale": (
        lambda d: write_csv(
            d / "second.csv",
            [*AES2, "second"],
            [["e1", "One.", "3", "4"], ["e2", "Two.", "4", ""], ["e3", "Three.", "2", "7"]],
        ),
        ["--format", "aes2", "--second-score", "second"],
        ("second.csv", "row 3", "rater2 7 (essay_id 'e3') is not a level of the scale 1-6"),
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
    assert "double-scored: none (no second human rating" in result.stdout


def test_data_check_counts_double_scored_essays(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rows = [
        [f"e{i}", f"Essay {i}.", str(1 + i % 4), "" if i % 3 else str(1 + i % 4)] for i in range(9)
    ]
    path = write_csv(tmp_path / "double.csv", [*AES2, "second"], rows)
    result = run_cli("data", "check", path, "--format", "aes2", "--second-score", "second")
    assert result.exit_code == 0, result.stderr
    assert "double-scored: 3 of 9 essays (33.3%) have two human ratings" in result.stdout


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
        "train": "train.csv",
        "format": "ellipse",
        "subgroups": ["gender", "grade", "race_ethnicity", "SES"],
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


def aes2_rows(n: int, score: object = None) -> list[list[str]]:
    """``n`` essays on prompts p0..p5 in turn, each prompt scored 1..6 (or all ``score``), and a
    language column."""
    return [
        [
            f"e{i}",
            f"Essay {i} says something.",
            str(score if score is not None else 1 + (i // 6) % 6),
            ["en", "es"][i % 2],
            f"p{i % 6}",
        ]
        for i in range(n)
    ]


AES2_LANG = ["essay_id", "full_text", "score", "language", "prompt"]


def test_scores_that_never_vary_are_an_error_at_folds_and_data_check(
    tmp_path: Path,
    run_cli,  # type: ignore[no-untyped-def]
) -> None:
    flat = write_csv(tmp_path / "flat.csv", AES2_LANG, aes2_rows(12, score=4))
    message = ("flat.csv", "all 12 training essays score 4: scores must vary to learn anything")
    assert_error(run_cli("data", "check", flat), *message)
    assert_error(run_cli("folds", "-w", tmp_path / "ws", "--train", flat), *message)
    assert not (tmp_path / "ws" / "folds.csv").exists()
    assert not (tmp_path / "ws" / "configs" / "data.yaml").exists()


def test_rare_levels_are_a_warning_at_folds_and_data_check(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    checked = run_cli("data", "check", SAMPLE_TRAIN)
    assert checked.exit_code == 0, checked.stderr
    assert checked.stderr.strip() == (
        "warning: at 5 folds (the default): score levels 1 (1 essay), 1.5 (2 essays): fewer "
        "essays than 5 folds, so some validation folds never see them"
    )
    split = run_cli("folds", "-w", tmp_path, "--train", SAMPLE_TRAIN, "--n-folds", "2")
    assert split.exit_code == 0, split.stderr
    assert split.stderr.strip() == (
        "warning: score level 1 (1 essay): fewer essays than 2 folds, so some validation folds "
        "never see it"
    )


def test_folds_table_shows_rare_levels(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("folds", "-w", tmp_path, "--train", SAMPLE_TRAIN)
    assert result.exit_code == 0, result.stderr
    row = next(line.split() for line in result.stdout.splitlines() if line.split()[:1] == ["all"])
    # 480 essays: level 1 has 1 (0.2%), level 1.5 has 2 (0.4%), level 5 has 5 (1.0%).
    assert row[:6] == ["all", "480", "10", "0.2", "0.4", "9.4"]
    assert row[-1] == "1.0"


def test_seed_varies_grouped_folds_and_help_says_so(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    saved = {}
    for name, seed in (("a", "1"), ("b", "2"), ("c", "1")):
        result = run_cli("folds", "-w", tmp_path / name, "--train", SAMPLE_TRAIN, "--seed", seed)
        assert result.exit_code == 0, result.stderr
        assert json.loads((tmp_path / name / "folds.json").read_text())["method"] == "grouped"
        saved[name] = (tmp_path / name / "folds.csv").read_bytes()
    assert saved["a"] == saved["c"]
    assert saved["a"] != saved["b"]
    help_text = " ".join(run_cli("folds", "--help").stdout.split())
    assert "the order prompts are placed in (grouped)" in help_text.replace("│ ", "")


def test_folds_records_subgroups_format_and_scales(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    essays = write_csv(tmp_path / "essays.csv", AES2_LANG, aes2_rows(72))
    ws = tmp_path / "ws"
    result = run_cli(
        "folds", "-w", ws, "--train", essays, "--format", "generic", "--subgroups", "language",
        "--scale", "0-6", "--scale", "p5=1-6", "--n-folds", "2",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    config = yaml.safe_load((ws / "configs" / "data.yaml").read_text())
    assert config == {
        "train": str(essays.resolve()),
        "format": "generic",
        "scale": "0-6",
        "per_prompt_scales": {"p5": "1-6"},
        "subgroups": ["language"],
    }
    from aes_ensemble.data import load_workspace_dataset

    train, _ = load_workspace_dataset(Workspace.at(ws))
    assert train.subgroups == ("language",)
    assert train.frame["language"].to_list()[:2] == ["en", "es"]
    # Without --train: the options update the workspace's data config, the rest stays.
    again = run_cli("folds", "-w", ws, "--subgroups", "", "--n-folds", "2")
    assert again.exit_code == 0, again.stderr
    assert yaml.safe_load((ws / "configs" / "data.yaml").read_text()) == {
        k: v for k, v in config.items() if k != "subgroups"
    }


def test_ellipse_subgroups_are_carried_unless_dropped(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    carried = run_cli("folds", "-w", tmp_path / "a", "--train", SAMPLE_TRAIN)
    assert carried.exit_code == 0, carried.stderr
    assert "note: subgroups gender, grade, race_ethnicity, SES" in carried.stdout
    config = yaml.safe_load((tmp_path / "a" / "configs" / "data.yaml").read_text())
    assert config["subgroups"] == ["gender", "grade", "race_ethnicity", "SES"]
    assert config["format"] == "ellipse"
    dropped = run_cli("folds", "-w", tmp_path / "b", "--train", SAMPLE_TRAIN, "--subgroups", "")
    assert dropped.exit_code == 0, dropped.stderr
    assert "subgroups" not in yaml.safe_load((tmp_path / "b" / "configs" / "data.yaml").read_text())
    wrong = run_cli("folds", "-w", tmp_path / "c", "--train", SAMPLE_TRAIN, "--subgroups", "gendr")
    assert_error(
        wrong,
        "ellipse_train.csv",
        "subgroup column 'gendr' is not in the file (did you mean 'gender'?)",
        "columns: text_id_kaggle, full_text, prompt, Overall, gender, grade, race_ethnicity, SES",
    )
    assert not (tmp_path / "c" / "configs" / "data.yaml").exists()


def test_data_check_proposes_the_folds_line_that_keeps_subgroups(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import shlex

    essays = write_csv(tmp_path / "my essays.csv", AES2_LANG, aes2_rows(36))
    checked = run_cli("data", "check", essays)
    assert checked.exit_code == 0, checked.stderr
    assert "format: aes2 (detected from the columns)" in checked.stdout
    assert "subgroup columns: language" in checked.stdout
    line = next(x.strip() for x in checked.stdout.splitlines() if "aes-ensemble folds" in x)
    assert line == f"aes-ensemble folds --train '{essays}' --subgroups language"
    words = shlex.split(line)[1:]
    split = run_cli(*words, "-w", tmp_path / "ws")
    assert split.exit_code == 0, split.stderr
    config = yaml.safe_load((tmp_path / "ws" / "configs" / "data.yaml").read_text())
    assert config["subgroups"] == ["language"]
    sample = run_cli("data", "check", SAMPLE_TRAIN, "--format", "ellipse")
    assert "format: ellipse (--format)" in sample.stdout
    assert "--format ellipse --subgroups gender,grade,race_ethnicity,SES" in sample.stdout


def test_folds_notes_subgroup_like_columns_it_did_not_keep(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    essays = write_csv(tmp_path / "essays.csv", AES2_LANG, aes2_rows(36))
    result = run_cli("folds", "-w", tmp_path / "ws", "--train", essays)
    assert result.exit_code == 0, result.stderr
    assert (
        "note: subgroup-like columns language not kept; add --subgroups language" in result.stdout
    )


def test_damaged_folds_file_is_one_error_and_force_recovers(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert run_cli("folds", "-w", tmp_path, "--train", SAMPLE_TRAIN).exit_code == 0
    (tmp_path / "folds.csv").write_bytes(b"\x00\x01garbage")
    assert_error(
        run_cli("folds", "-w", tmp_path),
        "folds.csv: binary content",
        "restore it, or run `aes-ensemble folds --force` (every learner then refits)",
    )
    assert run_cli("folds", "-w", tmp_path, "--force").exit_code == 0
    from aes_ensemble.folds import load_folds

    assert load_folds(Workspace.at(tmp_path)).n_folds == 5


USER_MISTAKES: dict[str, tuple[Callable[[Path], list[str | Path]], tuple[str, ...]]] = {
    "train is a folder": (lambda d: ["--train", d], ("is a folder, not a file",)),
    "train is missing": (lambda d: ["--train", d / "none.csv"], ("none.csv: file not found",)),
    "train is empty": (lambda d: ["--train", _bytes(d / "e.csv", b"\n")], ("file is empty",)),
    "one fold": (lambda d: ["--train", SAMPLE_TRAIN, "--n-folds", "1"], ("need at least 2",)),
    "zero folds": (lambda d: ["--train", SAMPLE_TRAIN, "--n-folds", "0"], ("need at least 2",)),
    "more folds than essays": (
        lambda d: ["--train", SAMPLE_TRAIN, "--n-folds", "481"],
        ("480 essays cannot fill 481 folds",),
    ),
    "negative seed": (lambda d: ["--train", SAMPLE_TRAIN, "--seed", "-1"], ("--seed -1: must",)),
    "unknown method": (
        lambda d: ["--train", SAMPLE_TRAIN, "--method", "random"],
        ("unknown --method 'random'",),
    ),
    "bad scale": (lambda d: ["--train", SAMPLE_TRAIN, "--scale", "1to5"], ("--scale: score",)),
    "from-file bad row": (
        lambda d: [
            "--train",
            SAMPLE_TRAIN,
            "--from-file",
            _bytes(d / "f.csv", b"essay_id,fold\nA,0\nB,-1\n"),
        ],
        ("f.csv: row 2: fold '-1' is not a non-negative integer",),
    ),
    "from-file a folder": (
        lambda d: ["--train", SAMPLE_TRAIN, "--from-file", d],
        ("is a folder, not a file",),
    ),
    "from-file one fold": (
        lambda d: ["--train", SAMPLE_TRAIN, "--from-file", _one_fold(d)],
        ("every essay is in fold 0: need at least 2 folds",),
    ),
    "from-file with infer-prompts": (
        lambda d: ["--train", SAMPLE_TRAIN, "--from-file", d, "--infer-prompts", "3"],
        ("drop --infer-prompts",),
    ),
    "stratified with too few per level": (
        lambda d: [
            "--train",
            write_csv(d / "t.csv", AES2, [["a", "x", "3"], ["b", "y", "3"], ["c", "z", "4"]]),
            "--n-folds",
            "3",
        ],
        ("need a score level with at least 3 essays",),
    ),
    "misspelled format, existing workspace": (
        lambda d: [*_workspace(d), "--format", "elipse"],
        ("--format: 'elipse' is not one of", "(did you mean 'ellipse'?)"),
    ),
    "damaged data.yaml": (
        lambda d: _damaged_config(d),
        ("data.yaml: invalid UTF-8",),
    ),
}


def _one_fold(directory: Path) -> Path:
    rows = list(csv.reader(SAMPLE_TRAIN.open(encoding="utf-8", newline="")))[1:]
    return write_csv(directory / "one_fold.csv", ["essay_id", "fold"], [[r[0], "0"] for r in rows])


def _workspace(directory: Path) -> list[str | Path]:
    """A data config for the sample, with no folds yet: the options that follow update it."""
    (directory / "ws" / "configs").mkdir(parents=True)
    (directory / "ws" / "configs" / "data.yaml").write_text(f"train: {SAMPLE_TRAIN}\n")
    return []


def _damaged_config(directory: Path) -> list[str | Path]:
    (directory / "ws" / "configs").mkdir(parents=True)
    (directory / "ws" / "configs" / "data.yaml").write_bytes(b"train: caf\xe9.csv\n")
    return []


@pytest.mark.parametrize("case", sorted(USER_MISTAKES))
def test_folds_user_mistakes_are_one_error_line(case: str, tmp_path: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    make, parts = USER_MISTAKES[case]
    options = make(tmp_path)
    result = run_cli("folds", "-w", tmp_path / "ws", *options)
    assert_error(result, *parts)
    assert not (tmp_path / "ws" / "folds.csv").exists()
