"""The validity statistics checked against ETS's RSMTool 12.0.0 (``rsmeval``) on the same scores.

    python -m bench.peer_rsmtool --rsm-python PATH [--data ../shared/data] [--workdir DIR]

``nox -s peer`` builds RSMTool's own environment and runs this (CI runs it after the tests). It
fits one cheap learner (``PEER_LEARNER``: ridge on word TF-IDF) on ASAP's standard split
(Taghipour & Ng folds, both human raters) and on ELLIPSE grouped by prompt (its four subgroup
columns), then hands RSMTool the same predictions (each as it is, and as the levels after the
cross-fitted cut points) and compares every statistic both compute:

- against the functions of ``aes_ensemble.report`` (``rsm_metrics``, ``true_score``,
  ``fairness``) called on exactly the columns rsmeval read (``sc1``, ``sc2``, the system score
  and RSMTool's trimmed and rounded versions of it);
- against the numbers of the validity document (``validity_document``) for the same learner.

A statistic agrees when ``|ours - theirs| <= 1e-6 * max(1, |theirs|)``. A difference is a
failure unless it is a documented difference of definition (``DIFFERENCES``, also in
docs/validity.md), which is counted and shown, never hidden. ASAP's prompts have their own scales,
which RSMTool cannot mix in one evaluation: each prompt is its own rsmeval run.
"""

from __future__ import annotations

import argparse
import csv
import math
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from aes_ensemble.data import Essays, load_workspace_dataset
from aes_ensemble.engine import fit_learner
from aes_ensemble.folds import assign_folds, read_folds_file, save_folds
from aes_ensemble.io import write_json_atomic, write_text_atomic
from aes_ensemble.report.fairness import ANALYSES, fairness_analyses, group_rows
from aes_ensemble.report.leaderboard import Scored, measure
from aes_ensemble.report.rsm_metrics import (
    Agreement,
    agreement,
    confusion_matrix,
    score_distribution,
)
from aes_ensemble.report.true_score import (
    consistency,
    degradation,
    disattenuated_correlation,
    true_score,
)
from aes_ensemble.report.validity_doc import MISSING, validity_document
from aes_ensemble.scales import ScoreScale
from aes_ensemble.store import PredictionStore
from aes_ensemble.workspace import Workspace

ROOT = Path(__file__).resolve().parent
REPO = ROOT.parent
TOLERANCE = 1e-6
TRIM_TOLERANCE = 0.4998  # rsmeval's default trim_tolerance
LEARNER = "peer"
PEER_LEARNER: dict[str, Any] = {
    "kind": "ridge",
    "seed": 42,
    "per_prompt": "auto",
    "features": {
        "handcrafted": False,
        "tfidf": {"word_ngram_range": [1, 1], "char_ngram_range": None, "min_df": 3},
        "scale": True,
    },
    "params": {"alpha": 3.0},
}
"""Cheap on purpose (about 20 s for ASAP on two cores): the check is about arithmetic, not QWK."""
SUBGROUPS = ["gender", "grade", "race_ethnicity", "SES"]
NO_INFO = "No info"  # RSMTool's name for an essay whose group is unknown

DIFFERENCES = {
    "document.fairness.trim": "the document's continuous group rows and fairness models use "
    "the prediction as it is; RSMTool's use it trimmed to the scale +-0.4998 (raw_trim). They "
    "are compared only where trimming changes no prediction.",
}
"""Deliberate differences of definition between the validity document and RSMTool 12.0.0. The
statistics' own are ``aes_ensemble.report.rsm_metrics.DIFFERENCES``: levels nobody used (listed
by us, not by RSMTool) must be empty (``compare_tables``); an essay without a group label is
passed to our functions as RSMTool's "No info" group (the document calls it "(missing)"); the
others (a constant rater, a zero human-human r) would show as failures: they do not arise here."""

AGREEMENT_STATS = {
    "N": "n",
    "h_mean": "h_mean",
    "h_sd": "h_sd",
    "h_min": "h_min",
    "h_max": "h_max",
    "sys_mean": "sys_mean",
    "sys_sd": "sys_sd",
    "sys_min": "sys_min",
    "sys_max": "sys_max",
    "corr": "corr",
    "wtkappa": "wtkappa",
    "R2": "r2",
    "kappa": "kappa",
    "exact_agr": "exact_agr",
    "adj_agr": "adj_agr",
    "SMD": "smd",
    "RMSE": "rmse",
}
"""RSMTool's ``eval`` columns -> ``Agreement`` fields."""
CONSISTENCY_STATS = {
    "N": "n",
    "h1_mean": "h_mean",
    "h1_sd": "h_sd",
    "h1_min": "h_min",
    "h1_max": "h_max",
    "h2_mean": "sys_mean",
    "h2_sd": "sys_sd",
    "h2_min": "sys_min",
    "h2_max": "sys_max",
    "corr": "corr",
    "wtkappa": "wtkappa",
    "kappa": "kappa",
    "exact_agr": "exact_agr",
    "adj_agr": "adj_agr",
    "SMD": "smd",
}
DEGRADATION_STATS = {
    "corr": "corr",
    "kappa": "kappa",
    "wtkappa": "wtkappa",
    "exact_agr": "exact_agr",
    "adj_agr": "adj_agr",
    "SMD": "smd",
}
TRUE_SCORE_STATS = {
    "N": "n",
    "N single": "n_single",
    "N multiple": "n_double",
    "Variance of errors": "variance_errors_human",
    "True score var": "variance_true",
    "MSE true": "mse_true",
    "PRMSE true": "prmse",
}
BY_GROUP_STATS = ("sys_mean", "sys_sd", "wtkappa", "corr", "DSM", "RMSE", "R2")
BY_GROUP_ROUND_STATS = ("sys_mean", "sys_sd", "kappa", "exact_agr", "adj_agr", "DSM")
ESTIMATE_STATS = {
    "estimate": "estimate",
    "P>[t]": "p_value",
    "[0.025": "ci_low",
    "0.975]": "ci_high",
}


# --- one rsmeval run and what we expect of it -----------------------------------------------


@dataclass
class Run:
    """One rsmeval evaluation: ``sc1`` (and ``sc2``) against ``system`` on one scale."""

    name: str
    scale: ScoreScale
    ids: list[str]
    sc1: np.ndarray
    system: np.ndarray
    sc2: np.ndarray | None = None
    groups: dict[str, list[str | None]] = field(default_factory=dict)

    def rows(self) -> dict[str, np.ndarray]:
        """The system score as RSMTool analyses it: raw, trimmed, trimmed and rounded."""
        trim = np.clip(
            self.system, self.scale.low - TRIM_TOLERANCE, self.scale.high + TRIM_TOLERANCE
        )
        return {"raw": self.system, "raw_trim": trim, "raw_trim_round": np.rint(trim)}

    def is_levels(self, values: np.ndarray) -> bool:
        return bool(np.all(self.scale.is_level(values)))

    def agreement(self, human: np.ndarray, values: np.ndarray, **kw: Any) -> Agreement:
        """Our statistics: QWK on levels through metrics.qwk where the values are levels."""
        levels = self.is_levels(values) and self.is_levels(human)
        return agreement(human, values, scale=self.scale, continuous=not levels, **kw)

    def write(self, folder: Path) -> dict[str, Any]:
        """The predictions file and rsmeval config; the job for ``peer_rsmeval.py``."""
        folder.mkdir(parents=True, exist_ok=True)
        header = ["spkitemid", "sc1", "system", *(["sc2"] if self.sc2 is not None else [])]
        header += list(self.groups)
        with (folder / "predictions.csv").open("w", newline="", encoding="utf-8") as handle:
            out = csv.writer(handle)
            out.writerow(header)
            for i, essay in enumerate(self.ids):
                row = [essay, repr(float(self.sc1[i])), repr(float(self.system[i]))]
                if self.sc2 is not None:
                    row.append("" if math.isnan(self.sc2[i]) else repr(float(self.sc2[i])))
                row += [g[i] or "" for g in self.groups.values()]
                out.writerow(row)
        config = {
            "experiment_id": "peer",
            "predictions_file": "predictions.csv",
            "system_score_column": "system",
            "human_score_column": "sc1",
            "id_column": "spkitemid",
            "trim_min": self.scale.low,
            "trim_max": self.scale.high,
            "trim_tolerance": TRIM_TOLERANCE,
            "exclude_zero_scores": False,  # ASAP prompts 3-7 score 0
            "subgroups": list(self.groups),
            "general_sections": ["evaluation"],
        }
        if self.sc2 is not None:
            config["second_human_score_column"] = "sc2"
        write_json_atomic(folder / "config.json", config)
        return {"config": str(folder / "config.json"), "output": str(folder / "rsmeval")}


Table = dict[str, dict[str, float]]
"""row -> column -> value, as one of RSMTool's CSV files."""


def _agreement_row(a: Agreement, stats: Mapping[str, str]) -> dict[str, float]:
    values = a.as_dict()
    return {theirs: float(values[ours]) for theirs, ours in stats.items()}


def expected(run: Run) -> dict[str, Table]:
    """Our functions on the run's columns, laid out as RSMTool's CSV files."""
    rows = run.rows()
    tables: dict[str, Table] = {"eval": {}}
    mh = {r: run.agreement(run.sc1, v) for r, v in rows.items()}
    tables["eval"] = {r: _agreement_row(a, AGREEMENT_STATS) for r, a in mh.items()}
    rounded_human = np.round(run.sc1)
    levels = np.arange(
        min(rounded_human.min(), rows["raw_trim_round"].min()),
        max(rounded_human.max(), rows["raw_trim_round"].max()) + 1,
    ).tolist()
    shares = score_distribution(rounded_human, rows["raw_trim_round"], levels)
    tables["score_dist"] = {
        f"{s.level:g}": {"human": s.human_pct, "sys_raw": s.machine_pct, "difference": s.difference}
        for s in shares
    }
    matrix = confusion_matrix(rounded_human, rows["raw_trim_round"], levels)
    tables["confMatrix"] = {
        f"{h:g}": {f"{m:g}": float(matrix[i, j]) for j, m in enumerate(levels)}
        for i, h in enumerate(levels)
    }
    if run.sc2 is not None:
        found = consistency(run.sc1, run.sc2, scale=run.scale)
        assert found is not None
        hh = found.agreement
        tables["consistency"] = {"": _agreement_row(hh, CONSISTENCY_STATS)}
        tables["degradation"] = {
            r: {theirs: degradation(a, hh)[ours] for theirs, ours in DEGRADATION_STATS.items()}
            for r, a in mh.items()
        }
        tables["disattenuated_correlations"] = {
            r: {
                "corr_HM": a.corr,
                "corr_HH": hh.corr,
                "corr_disattenuated": disattenuated_correlation(a.corr, hh.corr),
            }
            for r, a in mh.items()
        }
        tables["true_score_eval"] = {}
        for r, v in rows.items():
            ts = true_score(v, run.sc1, run.sc2)
            assert ts is not None
            tables["true_score_eval"][r] = {
                theirs: float(asdict(ts)[ours]) for theirs, ours in TRUE_SCORE_STATS.items()
            }
    for column, labels in run.groups.items():
        tables.update(_expected_groups(run, column, [NO_INFO if g is None else g for g in labels]))
    return tables


def _expected_groups(run: Run, column: str, labels: list[str]) -> dict[str, Table]:
    """eval_by_GROUP (trimmed and trimmed-rounded columns) and the three fairness models."""
    rows = run.rows()
    by_group: Table = {}
    for suffix, stats in (("raw_trim", BY_GROUP_STATS), ("raw_trim_round", BY_GROUP_ROUND_STATS)):
        values = rows[suffix]
        levels = run.is_levels(values) and run.is_levels(run.sc1)
        found = group_rows(
            run.sc1, values, labels, column, min_n=1, scale=run.scale, continuous=not levels
        )
        whole = run.agreement(run.sc1, values)
        for name, a, dsm in [(g.group, g.agreement, g.dsm) for g in found] + [
            ("All data", whole, 0.0)
        ]:
            row = by_group.setdefault(name, {"N": a.n, "h_mean": a.h_mean, "h_sd": a.h_sd})
            ours = {**_agreement_row(a, AGREEMENT_STATS), "DSM": dsm}
            row.update({f"{s}.{suffix}": ours[s] for s in stats})
    tables = {f"eval_by_{column}": by_group}
    fairness: Table = {"R2": {}, "sig": {}}
    for model in fairness_analyses(run.sc1, rows["raw_trim"], labels):
        title = ANALYSES[model.analysis]
        fairness["R2"][title] = model.r2
        fairness["sig"][title] = model.p_value
        tables[f"estimates_{model.analysis}_by_{column}"] = {
            e.group: {theirs: float(getattr(e, ours)) for theirs, ours in ESTIMATE_STATS.items()}
            for e in model.estimates
        }
    tables[f"fairness_metrics_by_{column}"] = fairness
    return tables


def read_rsmeval(run_dir: Path, names: list[str]) -> dict[str, Table]:
    """RSMTool's CSV files named like ours (``peer_NAME.csv``) as tables."""
    out: dict[str, Table] = {}
    for name in names:
        path = run_dir / "rsmeval" / "output" / f"peer_{name}.csv"
        if not path.is_file():
            continue
        frame = pd.read_csv(path, index_col=0, keep_default_na=False, na_values=[""])
        out[name] = {
            _key(row): {str(c): _number(v) for c, v in values.items()}
            for row, values in frame.iterrows()
        }
    return out


def _key(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return f"{value:g}"
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


# --- comparison ------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What the comparison found: counts per table, the largest gap among agreeing numbers,
    documented differences per reason, and every failure."""

    compared: int = 0
    both_undefined: int = 0
    worst: float = 0.0
    documented: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    per_table: dict[str, int] = field(default_factory=dict)

    def check(
        self, where: str, ours: float, theirs: float, *, documented: str | None = None
    ) -> None:
        """One statistic at ``where`` (``source:table[row][column]``); NaN agrees only with
        NaN (both undefined, counted apart); ``documented``: a key of ``DIFFERENCES`` that
        excuses a gap here."""
        source, _, rest = where.partition(":")
        table = "validity document" if source == "document" else rest.split("[")[0]
        self.per_table[table] = self.per_table.get(table, 0) + 1
        self.compared += 1
        if math.isnan(ours) and math.isnan(theirs):
            self.both_undefined += 1
            return
        gap = abs(ours - theirs) if not (math.isnan(ours) or math.isnan(theirs)) else math.inf
        if gap <= TOLERANCE * max(1.0, abs(theirs)):
            self.worst = max(self.worst, gap)
            return
        if documented is not None:
            assert documented in DIFFERENCES, documented
            self.documented[documented] = self.documented.get(documented, 0) + 1
            return
        self.failures.append(f"{where}: ours {ours!r}, RSMTool {theirs!r} (|diff| {gap:.3g})")


def compare_tables(
    outcome: Outcome, run: str, ours: dict[str, Table], theirs: dict[str, Table]
) -> None:
    """Every statistic of ours against RSMTool's; cells only one side has must be empty
    (a level nobody used: zero counts), anything else is reported missing."""
    for table, rows in ours.items():
        if table not in theirs:
            outcome.missing.append(f"{run}:{table} (RSMTool wrote no such file)")
            continue
        for row, values in rows.items():
            other = theirs[table].get(row)
            for column, value in values.items():
                if other is None or column not in other:
                    if table in ("score_dist", "confMatrix") and value == 0:
                        continue  # a level neither side used: RSMTool lists only used levels
                    outcome.missing.append(f"{run}:{table}[{row}][{column}]")
                    continue
                outcome.check(f"{run}:{table}[{row}][{column}]", value, other[column])


# --- the predictions -------------------------------------------------------------------------


def _workspace(root: Path, data: dict[str, Any]) -> Workspace:
    ws = Workspace.at(root)
    ws.configs_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(ws.data_config_path, yaml.safe_dump(data, sort_keys=False))
    write_text_atomic(ws.configs_dir / f"{LEARNER}.yaml", yaml.safe_dump(PEER_LEARNER))
    return ws


def predictions(ws: Workspace, make_folds: Callable[[Essays], Any]) -> tuple[Essays, Scored]:
    """Fit ``PEER_LEARNER`` on the workspace's folds (reused when current) and score it as the
    leaderboard does: the OOF prediction and its cross-fitted levels."""
    essays, _ = load_workspace_dataset(ws)
    if not ws.folds_path.is_file():
        save_folds(ws, make_folds(essays))
    fit_learner(ws, LEARNER, progress=False)
    store = PredictionStore(ws.oof_dir)
    (ps,) = store.read_many([LEARNER], expected_ids=essays.ids)
    return essays, measure(ps, essays)


def asap_runs(essays: Essays, scored: Scored) -> list[Run]:
    """Per prompt and kind: the two raters (``sc1`` rater 1, ``sc2`` rater 2), and the resolved
    score alone (the document's machine-human rows); prompt 1 once more with a third of its
    second ratings removed (partial double scoring)."""
    ratings = essays.human_ratings()
    if ratings is None:
        raise SystemExit("peer: the ASAP file has no rater1_domain1/rater2_domain1 columns")
    first, second = ratings
    runs = []
    for prompt in sorted({str(p) for p in essays.prompts}, key=int):
        rows = np.flatnonzero(essays.prompts == prompt)
        scale = essays.scales.for_prompt(prompt)
        ids = [essays.ids[i] for i in rows]
        for kind, machine in (("continuous", scored.pred), ("levels", scored.thresholded)):
            system = machine[rows]
            runs.append(
                Run(f"asap-{prompt}-{kind}-raters", scale, ids, first[rows], system, second[rows])
            )
            runs.append(Run(f"asap-{prompt}-{kind}-score", scale, ids, essays.scores[rows], system))
    partial = next(r for r in runs if r.name == "asap-1-continuous-raters")
    sc2 = second[essays.prompts == "1"].copy()
    sc2[::3] = np.nan
    runs.append(replace(partial, name="asap-1-continuous-partial", sc2=sc2))
    return runs


def ellipse_runs(essays: Essays, scored: Scored) -> list[Run]:
    scale = essays.scales.for_prompt(None)
    groups = {c: essays.frame[c].to_list() for c in essays.subgroups}
    return [
        Run(f"ellipse-{kind}", scale, essays.ids, essays.scores, machine, groups=groups)
        for kind, machine in (("continuous", scored.pred), ("levels", scored.thresholded))
    ]


# --- the validity document against RSMTool ---------------------------------------------------


def compare_document(
    outcome: Outcome,
    dataset: str,
    document: dict[str, Any],
    runs: dict[str, Run],
    rsm: dict[str, dict[str, Table]],
) -> None:
    """The document's per-prompt (ASAP) or overall (ELLIPSE) rows, human-human, degradation,
    disattenuated correlation, PRMSE and subgroup rows against RSMTool's on the same essays."""
    (model,) = document["models"]
    for kind in ("continuous", "levels"):
        if dataset == "asap":
            for prompt, per in model["per_prompt"].items():
                _document_prompt(outcome, document, model, prompt, kind, per[kind], rsm)
        else:
            name = f"ellipse-{kind}"
            _agreement_vs(
                outcome, f"document:{name}", model["overall"][kind], rsm[name]["eval"]["raw"]
            )
            _document_groups(outcome, model["fairness"], kind, runs[name], rsm[name])


def _agreement_vs(
    outcome: Outcome, where: str, ours: Mapping[str, Any], theirs: Mapping[str, float]
) -> None:
    for their_name, our_name in AGREEMENT_STATS.items():
        outcome.check(f"{where}[{their_name}]", _num(ours[our_name]), theirs[their_name])


def _document_prompt(
    outcome: Outcome,
    document: dict[str, Any],
    model: dict[str, Any],
    prompt: str,
    kind: str,
    row: Mapping[str, Any],
    rsm: dict[str, dict[str, Table]],
) -> None:
    by_score = rsm[f"asap-{prompt}-{kind}-score"]
    raters = rsm[f"asap-{prompt}-{kind}-raters"]
    where = f"document:asap-{prompt}-{kind}"
    _agreement_vs(outcome, where, row, by_score["eval"]["raw"])
    hh = document["human_human"]["per_prompt"][prompt]
    theirs_hh = raters["consistency"][""]
    for their_name, our_name in CONSISTENCY_STATS.items():
        outcome.check(
            f"{where}:human_human[{their_name}]", _num(hh[our_name]), theirs_hh[their_name]
        )
    block = model["consistency"]["per_prompt"][prompt][kind]
    # the document's machine-human is against the resolved score; RSMTool's run by score gives
    # that side, its run by raters the human-human side
    mh = by_score["eval"]["raw"]
    for their_name, our_name in DEGRADATION_STATS.items():
        outcome.check(
            f"{where}:degradation[{their_name}]",
            _num(block["degradation"][our_name]),
            mh[their_name] - theirs_hh[their_name],
        )
    outcome.check(
        f"{where}:disattenuated_corr",
        _num(block["disattenuated_corr"]),
        mh["corr"] / math.sqrt(theirs_hh["corr"]),
    )
    ts = block["true_score"]
    for their_name, our_name in TRUE_SCORE_STATS.items():
        outcome.check(
            f"{where}:true_score[{their_name}]",
            _num(ts[our_name]),
            raters["true_score_eval"]["raw"][their_name],
        )


def _num(value: Any) -> float:
    """A document number; JSON null (an undefined statistic) is NaN, as RSMTool's empty cell."""
    return math.nan if value is None else float(value)


def _rsm_group(name: str) -> str:
    """The document's name of the unknown group, "(missing)", is RSMTool's "No info"."""
    return name.replace(MISSING, NO_INFO)


def _document_groups(
    outcome: Outcome, fairness: dict[str, Any], kind: str, run: Run, rsm: dict[str, Table]
) -> None:
    trimmed = bool(np.any(run.rows()["raw_trim"] != run.system))
    for column, entry in fairness.items():
        where = f"document:{run.name}:{column}"
        documented = "document.fairness.trim" if trimmed else None
        by_group = rsm[f"eval_by_{column}"]
        for g in entry[kind]["groups"]:
            theirs = by_group[_rsm_group(g["group"])]
            ours = {**{k: g["agreement"][v] for k, v in AGREEMENT_STATS.items()}, "DSM": g["dsm"]}
            for stat in ("N", "h_mean", "h_sd"):
                outcome.check(f"{where}[{g['group']}][{stat}]", _num(ours[stat]), theirs[stat])
            for stat in BY_GROUP_STATS:
                outcome.check(
                    f"{where}[{g['group']}][{stat}.raw_trim]",
                    _num(ours[stat]),
                    theirs[f"{stat}.raw_trim"],
                    documented=documented,
                )
        for analysis in entry[kind]["analyses"]:
            title = ANALYSES[analysis["analysis"]]
            table = rsm[f"fairness_metrics_by_{column}"]
            for their_row, ours_key in (("R2", "r2"), ("sig", "p_value")):
                outcome.check(
                    f"{where}:{analysis['analysis']}[{their_row}]",
                    _num(analysis[ours_key]),
                    table[their_row][title],
                    documented=documented,
                )
            estimates = rsm[f"estimates_{analysis['analysis']}_by_{column}"]
            for e in analysis["estimates"]:
                for their_name, our_name in ESTIMATE_STATS.items():
                    outcome.check(
                        f"{where}:{analysis['analysis']}[{e['group']}][{their_name}]",
                        _num(e[our_name]),
                        estimates.get(_rsm_group(e["group"]), {}).get(their_name, math.nan),
                        documented=documented,
                    )


# --- main ------------------------------------------------------------------------------------


def run_rsmeval(rsm_python: Path, jobs: list[dict[str, Any]], folder: Path) -> None:
    write_json_atomic(folder / "jobs.json", jobs)
    driver = ROOT / "peer_rsmeval.py"
    subprocess.run([str(rsm_python), str(driver), str(folder / "jobs.json")], check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rsm-python", type=Path, required=True, help="RSMTool's interpreter")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs" / "peer")
    args = parser.parse_args(argv)
    asap_dir, ellipse_dir = args.data / "asap-aes", args.data / "ellipse"
    if not (asap_dir.is_dir() and ellipse_dir.is_dir()):
        print(f"peer: skipped: {args.data} has no asap-aes/ and ellipse/ (the real corpora)")
        return 0
    start = time.perf_counter()
    asap_ws = _workspace(
        args.workdir / "asap",
        {"train": str((asap_dir / "training_set_rel3.clean.csv").resolve()), "format": "asap"},
    )
    asap, asap_scored = predictions(
        asap_ws, lambda e: read_folds_file(asap_dir / "folds_taghipour_ng2016.csv", e)
    )
    ellipse_ws = _workspace(
        args.workdir / "ellipse",
        {
            "train": str((ellipse_dir / "ELLIPSE_Final_github_test.csv").resolve()),
            "format": "ellipse",
            "subgroups": SUBGROUPS,
        },
    )
    ellipse, ellipse_scored = predictions(
        ellipse_ws, lambda e: assign_folds(e, n_folds=5, seed=42, method="grouped")
    )
    fitted = time.perf_counter() - start
    print(f"peer: predictions ready ({fitted:.0f} s)", flush=True)

    runs = {
        r.name: r for r in [*asap_runs(asap, asap_scored), *ellipse_runs(ellipse, ellipse_scored)]
    }
    folder = args.workdir / "rsmeval"
    jobs = [run.write(folder / name) for name, run in runs.items()]
    run_rsmeval(args.rsm_python, jobs, folder)

    outcome = Outcome()
    rsm: dict[str, dict[str, Table]] = {}
    for name, run in runs.items():
        ours = expected(run)
        rsm[name] = read_rsmeval(folder / name, list(ours))
        compare_tables(outcome, name, ours, rsm[name])
    for dataset, essays, scored in (
        ("asap", asap, asap_scored),
        ("ellipse", ellipse, ellipse_scored),
    ):
        document = validity_document(essays, [scored], n_boot=20, seed=0)
        compare_document(outcome, dataset, document, runs, rsm)
    return report(outcome, time.perf_counter() - start, args.workdir)


def report(outcome: Outcome, seconds: float, workdir: Path) -> int:
    """Print what was compared; 1 when a statistic differs without a documented reason."""
    print(f"peer: {outcome.compared} statistics compared with RSMTool 12.0.0 ({seconds:.0f} s)")
    print("  " + ", ".join(f"{t} {n}" for t, n in sorted(outcome.per_table.items())))
    print(
        f"  largest difference among those that agree: {outcome.worst:.2g}; "
        f"undefined on both sides (NaN): {outcome.both_undefined}"
    )
    for key, n in outcome.documented.items():
        print(f"  {n} differ by a documented difference of definition, {key}: {DIFFERENCES[key]}")
    write_json_atomic(workdir / "peer.json", {**asdict(outcome), "seconds": round(seconds, 1)})
    for line in outcome.missing[:20]:
        print(f"  MISSING {line}")
    for line in outcome.failures[:50]:
        print(f"  DIFFERS {line}")
    bad = len(outcome.failures) + len(outcome.missing)
    if bad:
        print(f"peer: FAILED: {len(outcome.failures)} differ, {len(outcome.missing)} missing")
        return 1
    print("peer: every statistic agrees with RSMTool")
    return 0


if __name__ == "__main__":
    sys.exit(main())
