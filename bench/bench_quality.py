"""Issue 16's CPU-quality benchmark: each learner alone and its gain in the stack (an ablation),
time per learner, the CPU-only stack against its goals, and leave-one-prompt-out on ASAP.

    python -m bench --quality --asap ../shared/data/asap-aes --ellipse ../shared/data/ellipse \
        --cache DIR [--quality-learners ridge_tfidf,lgbm,xgb] [--lopo-learners ridge_tfidf,lgbm]

A learner is a config name, or a variant ``NAME=BASE@key=value@key=value`` (config BASE with
overrides, e.g. ``ridge_ling_nospell=ridge_ling@features.linguistic.spelling=false``), written
to the bench workspace's ``configs/NAME.yaml`` so its folds are fitted and reused like any other;
or a probe ``ling:FAMILY`` (``ling_FAMILY``: a ridge on that one linguistic family alone); or,
on ELLIPSE, ``BASE+extra`` (``BASE_extra``: config BASE trained with the 3,911 Feedback Prize ELL
essays beside ELLIPSE added to every fold's training rows, target the mean of their six analytic
scores; never in validation or OOF rows).

Ablation: the stack of all learners with the first of ``--metas`` (the others are listed too),
then the same stack without each learner: its gain is what the stack loses without it. Probes
are not in the stack: their gain is what the stack gains with them. Every QWK is the
cross-fitted one (cut points fitted on the other folds), as on the rest of the page.

Leave-one-prompt-out (ASAP): one fold per prompt, every learner with ``per_prompt: false`` (one
model on scores normalised per prompt, the setting for prompts unseen in training), headline =
mean over the 8 prompts of the plain-rounded QWK. Cut points need labelled essays on the held-out
prompt's scale: prompts 1, 2, 7 and 8 have a scale of their own, so their cross-fitted levels are
plain rounding; prompts 3/4 (0-3) and 5/6 (0-4) are cut by points fitted on the sibling prompt's
human scores, which is calibration on another prompt's targets, not target-free scoring.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import yaml

from aes_ensemble.config import apply_overrides, read_yaml
from aes_ensemble.data import load_workspace_dataset
from aes_ensemble.engine import fit_learner
from aes_ensemble.errors import AesError, did_you_mean
from aes_ensemble.features.linguistic import LinguisticConfig
from aes_ensemble.folds import assign_folds, load_folds, save_folds
from aes_ensemble.io import write_text_atomic
from aes_ensemble.learners.registry import load_learner_config
from aes_ensemble.metrics import headline_qwk, qwk_by_prompt
from aes_ensemble.stacking import StackConfig, build_stack_data, run_stack
from aes_ensemble.stacking.inputs import StackData, essay_features, training_prompts
from aes_ensemble.stacking.nested import nested_stack
from aes_ensemble.stacking.qwk_numbers import base_numbers
from aes_ensemble.stacking.run import StackRun, build_meta
from aes_ensemble.stacking.stack_workspace import stack_config
from aes_ensemble.store import PredictionStore
from aes_ensemble.workspace import Workspace, shipped_configs

GOALS = {"asap": 0.800, "ellipse": 0.675}
LOPO_GOAL = 0.60
LOPO_SETTING = ("per_prompt=false",)
HEADING = "## CPU quality: ablation, goals, prompts unseen in training"
TITLES = {
    "asap": "ASAP, standard split (mean over prompts of the cross-fitted QWK)",
    "ellipse": "ELLIPSE, prompt-grouped 5 folds (cross-fitted QWK)",
}


@dataclass(frozen=True)
class Spec:
    """A learner of the benchmark: config ``base`` with ``overrides``, fitted as ``name``."""

    name: str
    base: str
    overrides: tuple[str, ...] = ()
    probe: str = ""  # a probe's description: measured alone and added to the stack, not in it


FAMILIES = tuple(LinguisticConfig.model_fields)


def family_probe(family: str) -> Spec:
    """``ling_FAMILY``: ridge_ling with only that linguistic family (no TF-IDF, no handcrafted)."""
    if family not in FAMILIES:
        raise AesError(f"unknown linguistic family '{family}'{did_you_mean(family, FAMILIES)}")
    off = tuple(f"features.linguistic.{f}=false" for f in FAMILIES if f != family)
    overrides = ("features.tfidf=null", "features.handcrafted=false", *off)
    return Spec(f"ling_{family}", "ridge_ling", overrides, f"ridge on linguistic `{family}` only")


# The Feedback Prize ELL file beside ELLIPSE: 3,911 more essays of the same corpus, scored on six
# analytic scales and no holistic one; their mean stands in for the holistic score.
ELL_ANALYTIC = ("cohesion", "syntax", "vocabulary", "phraseology", "grammar", "conventions")


def extra_variant(base: str, extra: Path | None) -> Spec:
    """``BASE+extra``: config ``BASE`` with the ELL essays added to every fold's training rows."""
    if extra is None:
        raise AesError(f"learner '{base}+extra' needs the ELLIPSE folder (--ellipse)")
    overrides = (
        f"extra_train.path={extra.resolve()}",
        "extra_train.id_column=text_id",
        "extra_train.text_column=full_text",
        f"extra_train.score_columns=[{','.join(ELL_ANALYTIC)}]",
    )
    return Spec(f"{base}_extra", base, overrides)


def parse_specs(text: str, extra: Path | None = None) -> list[Spec]:
    """``a,b,NAME=BASE@k=v@k=v,ling:FAMILY,BASE+extra``: config names, variants of a config
    with overrides, probes of one linguistic family, and configs trained with the extra
    essays of file ``extra``."""
    specs = []
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        if item.startswith("ling:"):
            specs.append(family_probe(item.removeprefix("ling:")))
            continue
        if item.endswith("+extra"):
            specs.append(extra_variant(item.removesuffix("+extra"), extra))
            continue
        if "@" not in item:
            specs.append(Spec(item, item))
            continue
        head, *overrides = item.split("@")
        name, sep, base = head.partition("=")
        if not sep or not name or not base or not overrides:
            raise AesError(f"learner '{item}' must be NAME or NAME=BASE@key=value[@key=value]")
        specs.append(Spec(name, base, tuple(overrides)))
    return specs


def write_configs(ws: Workspace, specs: Sequence[Spec], setting: Sequence[str] = ()) -> None:
    """Each variant (and, with ``setting``, every learner) as the workspace's own config, built
    from the shipped config so a rerun writes the same file; checked before anything is fitted."""
    shipped = shipped_configs()
    for spec in specs:
        overrides = (*spec.overrides, *setting)
        if not overrides:
            continue
        base = shipped.get(spec.base) or ws.config_path(spec.base)
        path = ws.configs_dir / f"{spec.name}.yaml"
        data = apply_overrides(read_yaml(base), overrides)
        write_text_atomic(path, yaml.safe_dump(data, sort_keys=False))
        load_learner_config(path)


def fit_all(ws: Workspace, specs: Sequence[Spec]) -> dict[str, dict[str, Any]]:
    """Fit every learner (finished folds are reused); time per learner from the fold records,
    so a reused fold still reports what it cost (per-essay features included)."""
    out = {}
    for spec in specs:
        print(f"  {spec.name}: fitting", flush=True)
        start = time.perf_counter()
        summary = fit_learner(ws, spec.name, progress=True)
        out[spec.name] = {
            "config": spec.base,
            "overrides": list(spec.overrides),
            "fit_seconds": round(sum(f.seconds for f in summary.folds), 1),
            "seconds_this_run": round(time.perf_counter() - start, 1),
        }
        print(f"  {spec.name}: {out[spec.name]['fit_seconds']:.0f} s over its folds", flush=True)
    return out


class Stacker:
    """The workspace's OOF files read once; stacks of any subset of them, nothing written."""

    def __init__(self, ws: Workspace, names: Sequence[str]) -> None:
        self.ws = ws
        self.train, _ = load_workspace_dataset(ws)
        folds = load_folds(ws)
        sets = PredictionStore(ws.oof_dir).read_many(list(names), folds.hash)
        self.sets = {ps.meta.name: ps for ps in sets}

    def _data(self, names: Sequence[str], cfg: StackConfig) -> StackData:
        t = self.train
        extra, extra_names = essay_features(t.texts, cfg.features.length)
        levels = training_prompts(t.prompts) if cfg.features.prompt_weights else ()
        return build_stack_data(
            [self.sets[n] for n in names],
            t.ids,
            t.scores,
            t.prompts,
            t.scales,
            extra=extra,
            extra_names=extra_names,
            prompt_levels=levels,
        )

    def _config(self, names: Sequence[str], meta: str) -> StackConfig:
        """``meta`` is a meta-learner's name, optionally with switched-on meta-features and
        another threshold method: ``ridge+prompt_weights+length:optuna``."""
        spec, _, thresholds = meta.partition(":")
        name, *features = spec.split("+")
        overrides = {
            "meta": name,
            "models": list(names),
            "features": dict.fromkeys(features, True),
            "thresholds": thresholds or None,
        }
        return stack_config(self.ws, overrides=overrides)

    def run(self, names: Sequence[str], meta: str) -> StackRun:
        """The stack and the leaderboard of its learners, as ``aes-ensemble stack`` makes them."""
        cfg = self._config(names, meta)
        return run_stack(self._data(names, cfg), cfg)

    def alone(self, name: str, meta: str) -> dict[str, Any]:
        """One learner's leaderboard entry, measured as ``run`` measures each of its learners."""
        cfg = self._config([name], meta)
        data = self._data([name], cfg)
        entry = base_numbers(data, method=cfg.thresholds, seed=cfg.seed, n_boot=cfg.n_boot)[0]
        return {**entry, "pred": data.base[:, 0]}

    def cross(self, names: Sequence[str], meta: str) -> float:
        """Only the stack's cross-fitted headline QWK: the same nested CV as ``run`` without
        the learners' leaderboard and bootstrap, which an ablation of many learners repeats."""
        cfg = self._config(names, meta)
        data = self._data(names, cfg)
        result = nested_stack(
            data,
            build_meta(cfg),
            method=cfg.thresholds,
            seed=cfg.seed,
            level_inputs=cfg.meta == "vote",
        )
        return headline_qwk(data.y, result.cross, data.prompts, data.scales)


def _entry(e: dict[str, Any]) -> dict[str, Any]:
    return {k: e[k] for k in ("plain", "insample", "cross", "cross_ci") if k in e}


def ablation(
    ws: Workspace, specs: Sequence[Spec], metas: Sequence[str], dataset: str
) -> dict[str, Any]:
    """Each learner alone, the stack with every meta-learner, and the first meta's stack
    without each learner in turn (its gain = full stack - stack without it)."""
    timing = fit_all(ws, specs)
    names = [s.name for s in specs if not s.probe]
    stacker = Stacker(ws, [s.name for s in specs])
    stacks, learners = {}, {}
    for meta in metas:
        run = stacker.run(names, meta)
        board = {e["name"]: e for e in run.summary["leaderboard"]}
        stacks[meta] = {**_entry(board.pop(run.name)), "seconds": run.summary["seconds"]}
        learners = learners or {n: {**_entry(board[n]), **timing[n]} for n in names}
        print(f"  stack {meta}: {stacks[meta]['cross']:.4f} (cross-fitted)", flush=True)
    primary = metas[0]
    full = stacks[primary]["cross"]
    for name in names if len(names) > 1 else []:
        rest = [n for n in names if n != name]
        without = stacker.cross(rest, primary)
        learners[name]["stack_without"] = without
        learners[name]["gain_in_stack"] = full - without
        print(f"  {primary} stack without {name}: {without:.4f} ({full - without:+.4f})")
    for spec in (s for s in specs if s.probe):
        with_it = stacker.cross([*names, spec.name], primary)
        entry = _entry(stacker.alone(spec.name, primary))
        learners[spec.name] = {**entry, **timing[spec.name], "probe": spec.probe}
        learners[spec.name].update(stack_with=with_it, gain_in_stack=with_it - full)
        print(f"  {primary} stack with {spec.name}: {with_it:.4f} ({with_it - full:+.4f})")
    best = max(stacks, key=lambda m: stacks[m]["cross"])
    goal = GOALS.get(dataset)
    return {
        "learners": learners,
        "stacks": stacks,
        "ablation_meta": primary,
        "best_stack": best,
        "goal": goal,
        "reached": None if goal is None else bool(stacks[best]["cross"] >= goal),
    }


def check_one_prompt_per_fold(ws: Workspace) -> int:
    """The LOPO workspace's folds: each fold is exactly one prompt (else not LOPO)."""
    frame = load_folds(ws).frame
    per_fold = frame.group_by("fold").agg(pl.col("prompt").n_unique().alias("n"))
    sizes = frame.group_by("prompt").agg(pl.col("fold").n_unique().alias("n"))
    if per_fold["n"].max() != 1 or sizes["n"].max() != 1:
        raise AesError("leave-one-prompt-out folds must hold one prompt each", path=ws.folds_path)
    return per_fold.height


def lopo_folds(ws: Workspace) -> None:
    """One fold per prompt: ``grouped`` folds with as many folds as prompts, saved once."""
    train, _ = load_workspace_dataset(ws)
    n_prompts = len(set(train.prompts))
    save_folds(ws, assign_folds(train, n_folds=n_prompts, seed=42, method="grouped"))
    check_one_prompt_per_fold(ws)


def prompt_standardised(stacker: Stacker, names: Sequence[str], meta: str) -> np.ndarray:
    """The continuous OOF of the stack of ``names`` with the toolkit's ``unseen_prompts:
    standardise`` (``aes_ensemble.stacking.calibration``): each held-out prompt's predictions
    moved to the mean and SD of the training prompts' human scores (the average of their
    per-prompt means and SDs, 0..1 of each scale). It uses the held-out prompt's predictions (a
    batch of its essays), never its scores. A learner alone is the ``mean`` stack of it.
    Cut points do not change the continuous OOF, so none are fitted here (``method="none"``)."""
    cfg = stacker._config(names, meta).model_copy(update={"unseen_prompts": "standardise"})
    cfg.check()
    result = nested_stack(
        stacker._data(names, cfg),
        build_meta(cfg),
        method="none",
        seed=cfg.seed,
        unseen_prompts=cfg.unseen_prompts,
        min_prompt_batch=cfg.min_prompt_batch,
    )
    return result.oof


def _plain(
    y: np.ndarray, pred: np.ndarray, prompts: np.ndarray, scales: Any, standardised: np.ndarray
) -> dict[str, Any]:
    """Plain-rounded headline and per-prompt QWK (of ``pred`` and of its prompt-standardised
    counterpart), and where each prompt's predictions sit on its scale against the truth (a
    prompt-level offset is LOPO's typical failure)."""
    rounded = scales.round(pred, prompts)
    norm_pred, norm_true = scales.normalise(pred, prompts), scales.normalise(y, prompts)
    level = {
        str(p): [float(norm_true[prompts == p].mean()), float(norm_pred[prompts == p].mean())]
        for p in sorted(set(prompts), key=str)
    }
    standardised = scales.round(standardised, prompts)
    return {
        "plain": headline_qwk(y, rounded, prompts, scales),
        "standardised": headline_qwk(y, standardised, prompts, scales),
        "per_prompt_plain": qwk_by_prompt(y, rounded, prompts, scales),
        "mean_normalised_true_pred": level,
    }


def lopo(ws: Workspace, specs: Sequence[Spec], metas: Sequence[str]) -> dict[str, Any]:
    """Leave-one-prompt-out: every learner with ``per_prompt: false``, alone and stacked."""
    lopo_folds(ws)
    write_configs(ws, specs, LOPO_SETTING)
    timing = fit_all(ws, specs)
    names = [s.name for s in specs if not s.probe]
    stacker = Stacker(ws, [s.name for s in specs])
    t = stacker.train
    out: dict[str, Any] = {"learners": {}, "stacks": {}, "goal": LOPO_GOAL}
    for spec in specs:
        entry = stacker.alone(spec.name, metas[0])
        alone = prompt_standardised(stacker, [spec.name], "mean")
        numbers = _plain(t.scores, entry["pred"], t.prompts, t.scales, alone)
        probe = {"probe": spec.probe} if spec.probe else {}
        out["learners"][spec.name] = {**numbers, "cross": entry["cross"], **timing[spec.name]}
        out["learners"][spec.name].update(probe)
    for meta in metas:
        run = stacker.run(names, meta)
        board = {e["name"]: e for e in run.summary["leaderboard"]}
        stacked = prompt_standardised(stacker, names, meta)
        numbers = _plain(t.scores, run.result.oof, t.prompts, t.scales, stacked)
        out["stacks"][meta] = {**numbers, "cross": board[run.name]["cross"]}
        print(f"  LOPO stack {meta}: plain-rounded mean {numbers['plain']:.4f}", flush=True)
    members = [out["learners"][n] for n in names]
    best_single = max(members, key=lambda e: e["plain"])["plain"]
    best = max(out["stacks"], key=lambda m: out["stacks"][m]["plain"])
    out["best_stack"] = best
    out["stack_beats_best_learner"] = bool(out["stacks"][best]["plain"] >= best_single)
    out["reached"] = bool(out["stacks"][best]["plain"] >= LOPO_GOAL)
    top = max(out["stacks"], key=lambda m: out["stacks"][m]["standardised"])
    out["best_stack_standardised"] = top
    out["reached_standardised"] = bool(out["stacks"][top]["standardised"] >= LOPO_GOAL)
    return out


def _f(x: float) -> str:
    return f"{x:.4f}"


def _config_text(base: str, overrides: Sequence[str]) -> str:
    """The config and its overrides, an ``extra_train`` block as the file it reads."""
    extra = [o for o in overrides if o.startswith("extra_train.")]
    text = base + "".join(f" `{o}`" for o in overrides if o not in extra)
    path = next((o.partition("=")[2] for o in extra if o.startswith("extra_train.path=")), "")
    return text + (f" + `extra_train`: {Path(path).name}" if path else "")


def _ablation_lines(dataset: str, res: dict[str, Any]) -> list[str]:
    meta = res["ablation_meta"]
    lines = [
        f"### {TITLES.get(dataset, dataset)}",
        "",
        f"| learner | config | alone | stack `{meta}` without it (with it: probes) | "
        "gain in the stack | fit seconds (all folds) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, e in res["learners"].items():
        config = e.get("probe") or _config_text(e["config"], e["overrides"])
        other = e.get("stack_without", e.get("stack_with"))
        without = "-" if other is None else _f(other)
        gain = f"{e['gain_in_stack']:+.4f}" if "gain_in_stack" in e else "-"
        lines.append(
            f"| {name} | {config} | {_f(e['cross'])} | {without} | {gain} | {e['fit_seconds']} |"
        )
    for m, s in res["stacks"].items():
        low, high = s["cross_ci"]
        lines.append(
            f"| **stack `{m}`** (all but probes) | | **{_f(s['cross'])}** "
            f"({low:.3f}-{high:.3f}) | | | {s['seconds']} |"
        )
    best = res["best_stack"]
    if res["goal"] is not None:
        verdict = "reached" if res["reached"] else "not reached"
        lines += [
            "",
            f"CPU-only stack against the goal: best `{best}` "
            f"{_f(res['stacks'][best]['cross'])} vs {res['goal']:.3f}: **{verdict}**.",
        ]
    return [*lines, ""]


def _lopo_lines(res: dict[str, Any]) -> list[str]:
    rows = {**res["learners"], **{f"stack `{m}`": s for m, s in res["stacks"].items()}}
    prompts = sorted(next(iter(rows.values()))["per_prompt_plain"], key=str)
    lines = [
        "### ASAP leave-one-prompt-out (fold = prompt, `per_prompt: false`)",
        "",
        "Plain-rounded QWK of each prompt when no essay of it was in training; headline = their "
        "mean. Cross-fitted: cut points from the other folds, which for prompts 1, 2, 7, 8 "
        "(scales of their own) is plain rounding and for 3/4 and 5/6 uses the sibling prompt's "
        "human scores (shared scale): calibration on another prompt's targets, not target-free. "
        "Prompt-standardised: each held-out prompt's predictions moved to the mean and SD of the "
        "other prompts' human scores (0-1 of each scale), then plain-rounded; it uses the prompt's "
        "predictions on a batch of its essays, never its scores (the stack's `unseen_prompts: "
        "standardise`; a learner alone: the `mean` stack of it).",
        "",
        "| model | "
        + " | ".join(prompts)
        + " | **mean (plain)** | cross-fitted | prompt-standardised | seconds |",
        "| --- |" + " --- |" * (len(prompts) + 4),
    ]
    for name, e in rows.items():
        name = f"{name} ({e['probe']}, not stacked)" if e.get("probe") else name
        cells = " | ".join(f"{e['per_prompt_plain'][p]:.3f}" for p in prompts)
        seconds = e.get("fit_seconds", "")
        lines.append(
            f"| {name} | {cells} | **{_f(e['plain'])}** | {_f(e['cross'])} | "
            f"{_f(e['standardised']) if 'standardised' in e else '-'} | {seconds} |"
        )
    best = res["stacks"][res["best_stack"]]
    level = " | ".join(
        f"{best['mean_normalised_true_pred'][p][0]:.2f} / "
        f"{best['mean_normalised_true_pred'][p][1]:.2f}"
        for p in prompts
    )
    verdict = "reached" if res["reached"] else "not reached"
    beats = "does not lose to" if res["stack_beats_best_learner"] else "**loses to**"
    lines += [
        f"| mean score, true / predicted (stack `{res['best_stack']}`, 0-1 of each scale) | "
        f"{level} | | | | |",
        "",
        f"Best stack `{res['best_stack']}` {_f(best['plain'])} vs goal {res['goal']:.2f}: "
        f"**{verdict}**; it {beats} its best learner.",
    ]
    if "best_stack_standardised" in res:
        top = res["best_stack_standardised"]
        verdict = "reached" if res["reached_standardised"] else "not reached"
        lines.append(
            f"Prompt-standardised, best stack `{top}` "
            f"{_f(res['stacks'][top]['standardised'])}: **{verdict}**."
        )
    lines.append("")
    return lines


def markdown(section: dict[str, Any]) -> list[str]:
    """The section of docs/benchmarks.md; each part says the command that measured it."""
    lines = [
        HEADING,
        "",
        "Each learner alone (cross-fitted QWK), the stack of all of them, and the stack without "
        "each learner: its gain is what the stack loses without it. Seconds: fit time over all "
        "folds (per-essay features included), on 2 cores shared with other work. A learner "
        "`NAME_extra` is config NAME with `extra_train`: the 3,911 Feedback Prize ELL essays "
        "beside ELLIPSE (same corpus, disjoint texts, six analytic scores and no holistic one) "
        "join every fold's training rows with the mean of their analytic scores as the target; "
        "they never enter a validation fold or the OOF rows. Stacks named `META+FEATURE` switch "
        "that meta-feature on (`prompt_weights`: a weight per learner and prompt), "
        "`META:METHOD` fits the cut points with that method.",
        "",
    ]
    parts = [*section.get("datasets", {}).items()]
    if section.get("lopo"):
        parts.append(("lopo", section["lopo"]))
    for part, res in parts:
        lines += _lopo_lines(res) if part == "lopo" else _ablation_lines(part, res)
        if "command" in res:
            lines += [f"Measured by `{res['command']}` ({res['machine']}).", ""]
    return lines


def replace_section(page: str, heading: str, lines: Sequence[str], before: str) -> str:
    """``page`` with the ``## `` section titled ``heading`` replaced by ``lines`` (inserted
    before the section ``before`` when absent, else appended): the page's other sections, and
    the notes written by hand in them, stay as they are."""
    rows = page.rstrip("\n").split("\n")
    new = [*lines]
    if new and new[-1] != "":
        new.append("")
    if heading in rows:
        start = rows.index(heading)
        end = next((i for i in range(start + 1, len(rows)) if rows[i].startswith("## ")), None)
        rows = rows[:start] + new + (rows[end:] if end is not None else [])
    elif before in rows:
        at = rows.index(before)
        rows = rows[:at] + new + rows[at:]
    else:
        rows = [*rows, "", *new]
    return "\n".join(rows).rstrip("\n") + "\n"
