"""Reading essays files into the validated schema: real corpora, formats, edge cases."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from aes_ensemble.config import DataConfig
from aes_ensemble.data import (
    CORE_COLUMNS,
    inspect_header,
    load_dataset,
    load_workspace_dataset,
    read_essays,
    subgroup_candidates,
)
from aes_ensemble.errors import AesError
from aes_ensemble.scales import ScoreScale, ScoreScales
from aes_ensemble.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
ASAP_SET_SIZES = {"1": 1783, "2": 1800, "3": 1726, "4": 1772, "5": 1805, "6": 1800, "7": 1569}


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_asap_tsv_and_clean_csv_read_the_same(asap_tsv_path: Path, asap_csv_path: Path) -> None:
    start = time.perf_counter()
    tsv = read_essays(asap_tsv_path)
    seconds = time.perf_counter() - start
    csv_essays = read_essays(asap_csv_path)
    assert seconds < 3.0
    assert len(tsv) == 12978
    assert tsv.frame.equals(csv_essays.frame)
    counts = dict(tsv.frame.group_by("prompt").len().iter_rows())
    assert {p: counts[p] for p in ASAP_SET_SIZES} == ASAP_SET_SIZES
    assert counts["8"] == 723
    assert tsv.scales.for_prompt("8") == ScoreScale(0, 60)
    assert tsv.frame.columns[: len(CORE_COLUMNS)] == list(CORE_COLUMNS)
    assert {"rater1", "rater2"} <= set(tsv.frame.columns)
    # Essay 10534 never closes its quote; a CSV parser would merge it with 10540.
    row = tsv.frame.filter(pl.col("essay_id") == "10534").row(0, named=True)
    assert row["full_text"].startswith("When they come back")
    assert row["score"] == 1.0
    assert tsv.frame.filter(pl.col("essay_id") == "10540").height == 1


def test_asap_tsv_in_cp1252_equals_utf8(asap_tsv_path: Path, tmp_path: Path) -> None:
    lines = asap_tsv_path.read_text(encoding="utf-8").split("\n")
    quirky = next(i for i, line in enumerate(lines) if line.startswith("10534\t"))
    kept = [line for line in [*lines[1:400], lines[quirky]] if _cp1252_ok(line)]
    text = "\n".join([lines[0], *kept]) + "\n"
    assert any(not line.isascii() for line in kept)
    utf8 = tmp_path / "utf8.tsv"
    cp1252 = tmp_path / "cp1252.tsv"
    utf8.write_bytes(text.encode("utf-8"))
    cp1252.write_bytes(text.encode("cp1252"))
    with pytest.raises(UnicodeDecodeError):
        cp1252.read_bytes().decode("utf-8")
    assert read_essays(cp1252).frame.equals(read_essays(utf8).frame)


def _cp1252_ok(line: str) -> bool:
    try:
        line.encode("cp1252")
    except UnicodeEncodeError:
        return False
    return True


def test_ellipse_reads_prompts_half_points_and_subgroups(ellipse_csv_path: Path) -> None:
    subgroups = ("gender", "grade", "race_ethnicity", "SES")
    essays = read_essays(ellipse_csv_path, subgroups=subgroups)
    assert len(essays) == 2571
    assert essays.frame["prompt"].n_unique() == 44
    assert essays.scales.default == ScoreScale(1, 5, 0.5)
    assert essays.frame.columns == [*CORE_COLUMNS, *subgroups]
    levels = dict(essays.frame.group_by("score").len().iter_rows())
    assert levels[2.5] == 447 and levels[1.0] == 2
    assert essays.frame["SES"].null_count() == 1
    assert read_essays(ellipse_csv_path).frame.columns == list(CORE_COLUMNS)


def test_aes2_train_and_test_with_quotes_commas_newlines(tmp_path: Path) -> None:
    text = 'He said, "no."\nThen, a new paragraph;\r\n\n"quoted" end,'
    train = write_csv(
        tmp_path / "train.csv",
        ["essay_id", "full_text", "score", "source"],
        [["a1", text, 3, "persuade"], ["a2", "Short essay.", 6, ""], ["a3", "x y", 1, "kaggle"]],
    )
    test = write_csv(tmp_path / "test.csv", ["essay_id", "full_text"], [["b1", text]])
    essays = read_essays(train)
    assert essays.texts[0] == text
    assert essays.scores.tolist() == [3.0, 6.0, 1.0]
    assert essays.frame["source"].to_list() == ["persuade", None, "kaggle"]
    assert essays.scales.default == ScoreScale(1, 6)
    assert not essays.has_prompts
    unseen = read_essays(test, role="test", scales=essays.scales)
    assert unseen.texts == [text]
    assert unseen.frame["score"].null_count() == 1
    assert unseen.frame.schema == essays.frame.schema


def test_a_100k_word_essay_is_accepted(tmp_path: Path) -> None:
    long_text = " ".join(f"word{i % 97}," for i in range(100_000))
    path = write_csv(
        tmp_path / "long.csv", ["essay_id", "full_text", "score"], [["1", long_text, 4]]
    )
    essays = read_essays(path)
    assert len(essays.texts[0].split()) == 100_000


def test_generic_columns_and_inferred_scale(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "mine.csv",
        ["ID", "answer", "holistic", "task"],
        [["x", "one", "0", "t1"], ["y", "two", "1.5", "t2"], ["z", "three", "3", "t1"]],
    )
    columns = {"essay_id": "ID", "full_text": "answer", "score": "holistic", "prompt": "task"}
    essays = read_essays(path, data_format="generic", columns=columns)
    assert essays.scales.default == ScoreScale(0, 3, 0.5)
    assert essays.prompts.tolist() == ["t1", "t2", "t1"]
    declared = read_essays(path, columns=columns, scales=None)
    assert declared.frame.equals(essays.frame)
    with pytest.raises(AesError, match="not a level of the scale 0-3") as info:
        read_essays(path, columns=columns, scales=ScoreScales(default=ScoreScale(0, 3)))
    assert info.value.row == 2


def test_load_dataset_parses_scales_and_shares_them_with_test(tmp_path: Path) -> None:
    write_csv(
        tmp_path / "train.csv",
        ["essay_id", "full_text", "score", "prompt"],
        [["1", "a b", 1, "p"], ["2", "c d", 2.5, "p"], ["3", "e f", 8, "q"]],
    )
    write_csv(tmp_path / "test.csv", ["essay_id", "full_text", "prompt"], [["4", "g", "q"]])
    config = DataConfig(
        train=Path("train.csv"),
        test=Path("test.csv"),
        format="generic",
        scale="1-5:0.5",
        per_prompt_scales={"q": "0-10"},
    )
    train, test = load_dataset(config, tmp_path)
    assert test is not None
    assert train.scales.for_prompt("p") == ScoreScale(1, 5, 0.5)
    assert train.scales.for_prompt("q") == ScoreScale(0, 10)
    assert test.scales == train.scales
    bad = config.model_copy(update={"scale": "one to six"})
    with pytest.raises(AesError, match="must look like 1-6") as info:
        load_dataset(bad, tmp_path)
    assert info.value.key == "scale"


def test_repository_root_is_a_workspace_on_the_sample() -> None:
    train, test = load_workspace_dataset(Workspace.at(REPO))
    assert test is not None
    assert len(train) > 100 and len(test) > 10
    assert train.has_prompts and train.has_scores
    assert "gender" in train.subgroups
    assert not set(train.ids) & set(test.ids)
    assert np.all(train.scales.default.is_level(train.scores))  # type: ignore[union-attr]


def test_byte_order_mark_is_skipped_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    body = b"essay_id,full_text,score\ne1,ok,3\n"
    path.write_bytes(b"\xef\xbb\xbf" + body)
    assert read_essays(path).ids == ["e1"]
    path.write_bytes(b"\xef\xbb\xbf" + body + b"e2,b\xffd,4\n")
    with pytest.raises(AesError, match=r"byte offset 40 \(line 3\)"):
        read_essays(path)


SAMPLE_TRAIN = REPO / "aes_ensemble" / "sample" / "ellipse_train.csv"


def test_files_that_are_not_text_are_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AesError, match="is a folder, not a file"):
        read_essays(tmp_path)
    binary = tmp_path / "image.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(
        AesError, match=r"image.csv: binary content \(a NUL byte at byte offset 8\)"
    ):
        read_essays(binary)
    latin_header = tmp_path / "latin.csv"
    latin_header.write_bytes(b"essay_id,r\xe9ponse,score\ne1,oui,3\n")
    with pytest.raises(AesError, match=r"latin.csv: invalid UTF-8 at byte offset 10 \(line 1\)"):
        read_essays(latin_header)


def test_one_score_in_a_generic_file_says_scores_must_vary(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "flat.csv", ["id", "text", "mark"], [["a", "x", 2], ["b", "y", 2]])
    columns = {"essay_id": "id", "full_text": "text", "score": "mark"}
    with pytest.raises(
        AesError, match=r"flat.csv: all 2 training essays score 2: scores must vary"
    ):
        read_essays(path, data_format="generic", columns=columns)


def test_unknown_subgroup_names_the_column_and_the_file_columns() -> None:
    with pytest.raises(AesError) as info:
        read_essays(SAMPLE_TRAIN, subgroups=("gender", "ses"))
    assert str(info.value) == (
        f"{SAMPLE_TRAIN}: subgroup column 'ses' is not in the file (did you mean 'SES'?); "
        "columns: text_id_kaggle, full_text, prompt, Overall, gender, grade, race_ethnicity, SES"
    )
    with pytest.raises(AesError, match="subgroup column 'gender' is named twice"):
        read_essays(SAMPLE_TRAIN, subgroups=("gender", "grade", "gender"))
    with pytest.raises(AesError, match="subgroup 'Overall' is an id, text, score"):
        read_essays(SAMPLE_TRAIN, subgroups=("Overall",))


def test_a_test_file_needs_no_subgroup_or_second_rating_and_keeps_those_it_has(
    tmp_path: Path,
) -> None:
    """Kaggle test files hold id, text and prompt only; scores, second ratings and subgroups
    describe training rows."""
    full = pl.read_csv(SAMPLE_TRAIN, infer_schema=False).head(5)
    bare = tmp_path / "test.csv"
    full.select("text_id_kaggle", "full_text", "prompt").write_csv(bare)
    wanted = {"subgroups": ("gender", "SES"), "second_score_column": "Overall2"}
    essays = read_essays(bare, role="test", **wanted)  # type: ignore[arg-type]
    assert essays.subgroups == ()
    assert essays.frame.columns == ["essay_id", "full_text", "score", "prompt", "source"]
    assert essays.human_ratings() is None
    some = tmp_path / "some.csv"
    full.select("text_id_kaggle", "full_text", "prompt", "SES").write_csv(some)
    kept = read_essays(some, role="test", **wanted)  # type: ignore[arg-type]
    assert kept.subgroups == ("SES",)
    assert kept.frame["SES"].to_list() == full["SES"].to_list()
    train = tmp_path / "train.csv"
    full.drop("gender").write_csv(train)
    with pytest.raises(AesError, match="subgroup column 'gender' is not in the file"):
        read_essays(train, role="train", subgroups=("gender",))


def test_header_tells_the_format_and_the_ellipse_subgroups(tmp_path: Path) -> None:
    found = inspect_header(SAMPLE_TRAIN)
    assert (found.format, found.detected) == ("ellipse", True)
    assert found.known_subgroups == ("gender", "grade", "race_ethnicity", "SES")
    declared = inspect_header(SAMPLE_TRAIN, data_format="ellipse")
    assert (declared.format, declared.detected) == ("ellipse", False)
    plain = write_csv(tmp_path / "aes2.csv", ["essay_id", "full_text", "score"], [["a", "x", 3]])
    assert inspect_header(plain).format == "aes2"
    assert inspect_header(plain).known_subgroups == ()


def test_subgroup_candidates_are_low_cardinality_text_columns(tmp_path: Path) -> None:
    assert subgroup_candidates(SAMPLE_TRAIN) == ["gender", "grade", "race_ethnicity", "SES"]
    rows = [
        [
            f"e{i}",
            f"Essay {i}.",
            1 + i % 6,
            ["en", "es", "zh"][i % 3],
            i % 4,
            2.5 + (i % 3) / 2,
            "same",
            f"student {i}",
            f"p{i % 2}",
        ]
        for i in range(40)
    ]
    header = [
        "essay_id",
        "full_text",
        "score",
        "language",
        "grade_level",
        "cohesion",
        "cohort",
        "name",
        "prompt",
    ]
    path = write_csv(tmp_path / "mine.csv", header, rows)
    # language: 3 text values; grade_level and cohesion are numbers; cohort never varies; name
    # has one value per essay; prompt is a schema column.
    assert subgroup_candidates(path) == ["language"]


@pytest.mark.parametrize(
    "stored",
    [
        {"default": "1-6"},
        {"default": {"low": 1}},
        {"default": {"low": "1", "high": 6}},
        {"default": {"low": 1, "high": 6, "stepp": 1}},
        {"per_prompt": {"p": [1, 6]}},
        {"default": {"low": 6, "high": 1}},
    ],
)
def test_scales_read_back_from_a_damaged_file_are_an_aes_error(stored: dict[str, object]) -> None:
    assert ScoreScales.from_dict(ScoreScales(default=ScoreScale(1, 5, 0.5)).to_dict()) == (
        ScoreScales(default=ScoreScale(1, 5, 0.5))
    )
    with pytest.raises(AesError, match="scale"):
        ScoreScales.from_dict(stored)


SECOND = ["essay_id", "full_text", "score", "second"]


def _double_scored_file(tmp_path: Path, second: list[str]) -> Path:
    rows = [[f"e{i}", f"Essay number {i}.", str(1 + i % 6), s] for i, s in enumerate(second)]
    return write_csv(tmp_path / "double.csv", SECOND, rows)


def test_second_score_column_gives_both_human_ratings(tmp_path: Path) -> None:
    path = _double_scored_file(tmp_path, ["2", "", "3", "5", " ", "6"])
    config = DataConfig(train=path.name, format="aes2", second_score_column="second")
    essays, _ = load_dataset(config, tmp_path)
    ratings = essays.human_ratings()
    assert ratings is not None
    first, second = ratings
    np.testing.assert_array_equal(first, essays.scores)
    np.testing.assert_array_equal(second, [2, np.nan, 3, 5, np.nan, 6])
    # The same file without the key carries no second rating.
    plain, _ = load_dataset(DataConfig(train=path.name, format="aes2"), tmp_path)
    assert plain.human_ratings() is None
    assert essays.take([1, 3]).human_ratings()[1].tolist()[1] == 5.0  # type: ignore[index]


def test_second_score_column_that_is_absent_or_the_score_is_an_error(tmp_path: Path) -> None:
    path = _double_scored_file(tmp_path, ["2", "3", "4", "5", "6", "1"])
    with pytest.raises(AesError, match=r"second score column 'Second' .*did you mean 'second'"):
        read_essays(path, data_format="aes2", second_score_column="Second")
    with pytest.raises(AesError, match="is the file's id, text, score"):
        read_essays(path, data_format="aes2", second_score_column="score")
    bad = _double_scored_file(tmp_path, ["2", "3", "x", "5", "6", "1"])
    with pytest.raises(AesError, match="second 'x' is not a number") as caught:
        read_essays(bad, data_format="aes2", second_score_column="second")
    assert caught.value.row == 3


def test_second_rating_off_the_scale_is_kept_when_reading_and_named_by_check(
    tmp_path: Path,
) -> None:
    path = _double_scored_file(tmp_path, ["2", "3", "4", "9", "6", "1"])
    essays = read_essays(path, data_format="aes2", second_score_column="second")
    assert essays.human_ratings()[1][3] == 9.0  # type: ignore[index]
    with pytest.raises(AesError, match=r"rater2 9 \(essay_id 'e3'\) is not a level") as caught:
        read_essays(path, data_format="aes2", second_score_column="second", check_ratings=True)
    assert caught.value.row == 4


def test_asap_ratings_are_on_the_resolved_scale(asap_csv_path: Path) -> None:
    essays = read_essays(asap_csv_path, check_ratings=True)
    ratings = essays.human_ratings()
    assert ratings is not None
    first, second = ratings
    prompts, scores = essays.prompts, essays.scores
    for prompt in ("1", "7"):  # resolved = rater1 + rater2: the mean of the doubled ratings
        rows = prompts == prompt
        np.testing.assert_array_equal((first[rows] + second[rows]) / 2, scores[rows])
    rows = prompts == "2"  # prompt 2's resolved score is rater 1's
    np.testing.assert_array_equal(first[rows], scores[rows])
    assert np.isfinite(second).sum() == len(essays)


def test_essays_without_a_second_rating_have_no_human_ratings() -> None:
    essays = read_essays(REPO / "aes_ensemble" / "sample" / "ellipse_train.csv")
    assert essays.human_ratings() is None
