"""The RSMTool peer check's own machinery (bench/peer_rsmtool.py): RSMTool's trimming, reading
its CSV files, and a comparison that names every differing statistic. RSMTool itself runs only
in ``nox -s peer``, in its own environment; nothing here imports it."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from aes_ensemble.scales import ScoreScale

REPO = Path(__file__).resolve().parents[1]


def _peer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("peer_rsmtool", REPO / "bench/peer_rsmtool.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


peer = _peer()


def _run(**kw):  # type: ignore[no-untyped-def]
    h = np.array([1, 2, 2, 3, 4, 5, 6, 6, 3, 4], dtype=float)
    system = np.array([0.2, 2.4, 2.5, 3.5, 4.1, 5.6, 6.4997, 7.0, 2.9, 4.4])
    args = {"name": "t", "scale": ScoreScale(1, 6), "ids": [f"e{i}" for i in range(10)]}
    return peer.Run(**{**args, "sc1": h, "system": system, **kw})


def test_rows_trim_and_round_as_rsmeval() -> None:
    rows = _run().rows()
    # trim to [1 - 0.4998, 6 + 0.4998], then np.rint (half to even: 2.5 -> 2, 3.5 -> 4)
    np.testing.assert_allclose(rows["raw_trim"][[0, 6, 7]], [0.5002, 6.4997, 6.4998])
    np.testing.assert_array_equal(rows["raw_trim_round"], [1, 2, 2, 4, 4, 6, 6, 6, 3, 4])
    np.testing.assert_array_equal(rows["raw"], _run().system)


def test_check_names_differences_and_counts_documented_ones() -> None:
    outcome = peer.Outcome()
    outcome.check("asap-1:eval[raw][corr]", 0.5, 0.5 + 5e-7)
    outcome.check("asap-1:eval[raw][RMSE]", 1000.0, 1000.0004)  # relative above 1
    outcome.check("asap-1:eval[raw][kappa]", math.nan, math.nan)
    assert outcome.failures == [] and outcome.both_undefined == 1
    outcome.check("asap-1:eval[raw][SMD]", 0.1, 0.1 + 2e-6)
    outcome.check("asap-1:eval[raw][R2]", math.nan, 0.3)
    assert [f.split(":")[1].split(" ")[0] for f in outcome.failures] == [
        "eval[raw][SMD]",
        "eval[raw][R2]",
    ]
    outcome.check("document:x[R2]", 0.2, 0.3, documented="document.fairness.trim")
    assert outcome.documented == {"document.fairness.trim": 1}
    assert outcome.per_table == {"eval": 5, "validity document": 1}
    with pytest.raises(AssertionError):
        outcome.check("document:x[R2]", 0.2, 0.3, documented="not a documented reason")


def _write_like_rsmeval(tables: dict[str, dict[str, dict[str, float]]], folder: Path) -> None:
    """Each table as RSMTool's writer leaves it: a pandas CSV with the row names as index."""
    out = folder / "rsmeval" / "output"
    out.mkdir(parents=True)
    for name, rows in tables.items():
        frame = pd.DataFrame.from_dict(rows, orient="index")
        if name == "score_dist":  # RSMTool's score_dist index is the float level
            frame.index = [float(i) for i in frame.index]
        frame.to_csv(out / f"peer_{name}.csv")


def test_expected_tables_survive_rsmeval_csv_and_a_changed_number_is_named(
    tmp_path: Path,
) -> None:
    second = np.array([1, 2, 3, 3, 4, np.nan, 6, 5, np.nan, 4])
    run = _run(sc2=second, groups={"g": ["a", "b", None, "a", "b", "a", "b", "a", "b", "a"]})
    ours = peer.expected(run)
    assert {"eval", "consistency", "degradation", "true_score_eval", "eval_by_g"} <= set(ours)
    assert ours["true_score_eval"]["raw"]["N multiple"] == 8
    _write_like_rsmeval(ours, tmp_path)
    theirs = peer.read_rsmeval(tmp_path, list(ours))
    outcome = peer.Outcome()
    peer.compare_tables(outcome, "t", ours, theirs)
    assert outcome.failures == [] and outcome.missing == []
    cells = sum(len(values) for rows in ours.values() for values in rows.values())
    assert outcome.compared == cells > 250  # every number of ours met its RSMTool cell

    theirs["eval"]["raw_trim"]["wtkappa"] += 1e-3
    del theirs["consistency"][""]["kappa"]
    outcome = peer.Outcome()
    peer.compare_tables(outcome, "t", ours, theirs)
    assert len(outcome.failures) == 1 and "t:eval[raw_trim][wtkappa]" in outcome.failures[0]
    assert outcome.missing == ["t:consistency[][kappa]"]
