"""Score scales: levels, rounding, normalisation, parsing."""

from __future__ import annotations

import numpy as np
import pytest

from aes_ensemble.errors import AesError
from aes_ensemble.scales import ASAP_SCALES, ScoreScale, ScoreScales


def test_half_point_scale_levels() -> None:
    scale = ScoreScale(1, 5, 0.5)
    assert scale.n_levels == 9
    assert scale.levels.tolist() == [1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5]
    assert scale.round(np.array([0.2, 2.74, 2.76, 9.0])).tolist() == [1, 2.5, 3.0, 5]
    assert scale.is_level(np.array([2.5, 2.25, 5.5])).tolist() == [True, False, False]


def test_normalise_roundtrip_per_prompt() -> None:
    prompts = np.array(["1", "8", "3"], dtype=object)
    scores = np.array([12.0, 30.0, 0.0])
    norm = ASAP_SCALES.normalise(scores, prompts)
    assert norm.tolist() == [1.0, 0.5, 0.0]
    assert ASAP_SCALES.denormalise(norm, prompts).tolist() == scores.tolist()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1-6", ScoreScale(1, 6)), ("1..5:0.5", ScoreScale(1, 5, 0.5)), ("0-60", ScoreScale(0, 60))],
)
def test_parse(text: str, expected: ScoreScale) -> None:
    assert ScoreScale.parse(text) == expected


@pytest.mark.parametrize("text", ["six", "1-", "6-1", "1-5:0.3"])
def test_parse_rejects(text: str) -> None:
    with pytest.raises(AesError):
        ScoreScale.parse(text)


def test_infer_half_points() -> None:
    assert ScoreScale.infer(np.array([1.5, 2.0, 4.5])) == ScoreScale(1.5, 4.5, 0.5)


def test_scales_dict_roundtrip_and_missing_prompt() -> None:
    assert ScoreScales.from_dict(ASAP_SCALES.to_dict()) == ASAP_SCALES
    with pytest.raises(AesError, match="no score scale is declared for prompt '9'"):
        ASAP_SCALES.for_prompt("9")
