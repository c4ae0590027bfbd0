"""The benchmark suite: quality on ASAP (standard split) and ELLIPSE, and speed.

    python -m bench --asap ../shared/data/asap-aes --ellipse ../shared/data/ellipse \
        [--learners ridge_tfidf,lgbm,xgb,svr_emb] [--metas ridge,nnls,hill] \
        [--cache DIR] [--out docs] [--skip-speed] [--score [--score-learners ridge_tfidf,lgbm,xgb]]
        [--scale [--scale-learners ridge_tfidf,lgbm,xgb] [--jobs 2]]
    python -m bench --quality --asap ... --ellipse ... --cache DIR \
        [--quality-learners ridge_tfidf,lgbm,xgb] [--lopo-learners ridge_tfidf,lgbm]
    python -m bench --startup [--suite]

Each dataset gets its own workspace under ``bench/runs/<dataset>/`` (git-ignored), so a rerun
reuses finished folds. ``--cache`` points the workspaces at a feature cache (MiniLM embeddings are
the slow part on a CPU). ``--score`` adds the scoring section (bench/bench_score.py: a bundle of
the demo stack scoring ELLIPSE); run alone (``--score --skip-speed``, no dataset), it keeps the
other sections' saved results. ``--scale`` adds the scaling section (bench/bench_scale.py: the
learners' folds sequentially, with ``--jobs``, and on a local Ray cluster, on ASAP where
``--asap`` is given). ``--quality`` runs only the CPU-quality section (bench/bench_quality.py:
each learner alone and its gain in the stack, the stack against its goals, leave-one-prompt-out
on ASAP) and replaces only that section of the saved JSON and page; ``--startup`` likewise
times the command line's start-up (bench/bench_startup.py; ``--suite``: also the README's test
command). Results go to
``docs/benchmarks.md`` and ``docs/benchmarks.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from aes_ensemble.data import load_workspace_dataset, read_essays
from aes_ensemble.engine import fit_learner
from aes_ensemble.folds import assign_folds, read_folds_file, save_folds
from aes_ensemble.io import write_json_atomic, write_text_atomic
from aes_ensemble.metrics import qwk_by_prompt
from aes_ensemble.stacking.run import StackRun
from aes_ensemble.stacking.stack_workspace import stack_config, stack_workspace
from aes_ensemble.workspace import Workspace

ROOT = Path(__file__).resolve().parent
MAX_PROMPT_COLUMNS = 12  # ELLIPSE's 44 prompts make an unreadable table; the JSON has them
PUBLISHED_ASAP = {
    "EASE (BLRR)": 0.705,
    "Taghipour & Ng 2016 ensemble": 0.761,
    "R2BERT (2020)": 0.794,
    "NPCR (Xie et al. 2022), best published": 0.817,
}


def _workspace(name: str, data: dict[str, Any], cache: Path | None) -> Workspace:
    ws = Workspace.at(ROOT / "runs" / name)
    data = {k: str(Path(v).resolve()) if k in ("train", "test") else v for k, v in data.items()}
    ws.configs_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(ws.data_config_path, yaml.safe_dump(data, sort_keys=False))
    if cache is not None and not ws.cache_dir.exists():
        ws.cache_dir.symlink_to(cache.resolve(), target_is_directory=True)
    return ws


def asap_workspace(asap: Path, cache: Path | None) -> Workspace:
    ws = _workspace(
        "asap", {"train": str(asap / "training_set_rel3.clean.csv"), "format": "asap"}, cache
    )
    train, _ = load_workspace_dataset(ws)
    save_folds(ws, read_folds_file(asap / "folds_taghipour_ng2016.csv", train))
    return ws


def asap_lopo_workspace(asap: Path, cache: Path | None) -> Workspace:
    """ASAP with its own workspace for leave-one-prompt-out (bench_quality sets the folds)."""
    return _workspace(
        "asap_lopo", {"train": str(asap / "training_set_rel3.clean.csv"), "format": "asap"}, cache
    )


def ellipse_file(ellipse: Path) -> Path:
    return ellipse / "ELLIPSE_Final_github_test.csv"


# Beside ELLIPSE's holistic file: the Feedback Prize ELL essays (`NAME+extra` learners).
ELL_EXTRA_FILE = "feedback_prize_ell_train.csv"


def ellipse_workspace(ellipse: Path, cache: Path | None) -> Workspace:
    data = {
        "train": str(ellipse_file(ellipse)),
        "format": "ellipse",
        "subgroups": ["gender", "grade", "race_ethnicity", "SES"],
    }
    ws = _workspace("ellipse", data, cache)
    train, _ = load_workspace_dataset(ws)
    save_folds(ws, assign_folds(train, n_folds=5, seed=42, method="grouped"))
    return ws


def human_agreement(asap: Path) -> dict[str, float]:
    """rater1 vs rater2 QWK per ASAP prompt (the human-human reference)."""
    essays = read_essays(asap / "training_set_rel3.clean.csv", data_format="asap")
    frame = essays.frame.drop_nulls(["rater1", "rater2"])
    per = qwk_by_prompt(
        frame["rater1"].cast(float).to_numpy(),
        frame["rater2"].cast(float).to_numpy(),
        frame["prompt"].to_numpy(),
        _rater_scales(essays.scales, frame),
    )
    return per


def _rater_scales(scales: Any, frame: Any) -> Any:
    """The raters' scale: the range their own scores span (reading doubles ASAP's ratings on the
    prompts whose resolved score is their sum; QWK is the same either way)."""
    from aes_ensemble.scales import ScoreScale, ScoreScales

    per = {}
    for prompt in frame["prompt"].unique().to_list():
        rows = frame.filter(frame["prompt"] == prompt)
        both = rows["rater1"].cast(float).to_list() + rows["rater2"].cast(float).to_list()
        low = min(scales.for_prompt(prompt).low, *both)
        per[prompt] = ScoreScale(low, max(both))
    return ScoreScales(per_prompt=per)


def quality(ws: Workspace, learners: list[str], metas: list[str]) -> dict[str, Any]:
    """Fit every learner (finished folds are reused) and stack with each meta-learner, saying
    what starts and what it scored as it goes: ASAP learners run for minutes each."""
    out: dict[str, Any] = {"learners": {}, "stacks": {}}
    for name in learners:
        print(f"  {name}: fitting", flush=True)
        start = time.perf_counter()
        # A bar on a terminal, plain lines in a log (aes_ensemble.progress).
        summary = fit_learner(ws, name, progress=True)
        seconds = round(time.perf_counter() - start, 1)
        out["learners"][name] = {
            "seconds_this_run": seconds,
            "fit_seconds": round(sum(f.seconds for f in summary.folds), 1),
            "oof_qwk_plain": summary.overall_qwk,
        }
        qwk = "n/a" if summary.overall_qwk is None else f"{summary.overall_qwk:.4f}"
        print(f"  {name}: OOF QWK (plain-rounded) {qwk}, {seconds:.0f} s", flush=True)
    for meta in metas:
        print(f"  stack {meta}: nested CV with cross-fitted thresholds", flush=True)
        cfg = stack_config(ws, overrides={"meta": meta, "models": learners})
        run, _, _ = stack_workspace(ws, cfg)
        numbers = out["stacks"][meta] = _stack_numbers(run)
        low, high = numbers["stack"]["cross_ci"]
        print(
            f"  stack {meta}: QWK (cross-fitted thresholds) {numbers['stack']['cross']:.4f} "
            f"[{low:.3f}-{high:.3f}], {numbers['seconds']:.0f} s",
            flush=True,
        )
        per_prompt = numbers["stack"].get("per_prompt") or {}
        if 0 < len(per_prompt) <= MAX_PROMPT_COLUMNS:
            cells = ", ".join(f"{p} {v:.3f}" for p, v in sorted(per_prompt.items(), key=str))
            print(f"    per prompt: {cells}", flush=True)
    return out


def _stack_numbers(run: StackRun) -> dict[str, Any]:
    keep = ("plain", "insample", "cross", "cross_ci", "per_prompt")
    board = {e["name"]: {k: e[k] for k in keep if k in e} for e in run.summary["leaderboard"]}
    return {
        "seconds": run.summary["seconds"],
        "stack": board.pop(run.name),
        "learners": board,
        "weights": run.summary.get("weights"),
    }


def speed(texts: list[str], ellipse: Path | None) -> dict[str, Any]:
    """QWK vs scikit-learn, threshold search, feature extraction, stack fit seconds."""
    from aes_ensemble.features.handcrafted import handcrafted_features
    from bench import bench_metrics, bench_stack

    start = time.perf_counter()
    handcrafted_features(texts)
    per_second = len(texts) / (time.perf_counter() - start)
    return {
        "metrics": bench_metrics.main([] if ellipse is None else [str(ellipse_file(ellipse))]),
        "handcrafted_features": {"essays": len(texts), "essays_per_second": round(per_second)},
        "stack_10_learners_x_17000": bench_stack.time_stacks(["ridge", "nnls", "hill", "lgbm"]),
    }


def _fmt(x: Any) -> str:
    return f"{x:.4f}" if isinstance(x, float) else str(x)


def _row(name: str, e: dict[str, Any], seconds: Any) -> str:
    low, high = e["cross_ci"]
    return (
        f"| {name} | {_fmt(e['plain'])} | {_fmt(e['insample'])} | **{_fmt(e['cross'])}** | "
        f"{low:.3f}-{high:.3f} | {seconds} |"
    )


def quality_table(res: dict[str, Any]) -> list[str]:
    """Base learners once, then one row per meta-learner."""
    lines = [
        "| model | plain rounded | thresholded in-sample | thresholded cross-fitted | "
        "95% CI (cross) | seconds |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    first = next(iter(res["stacks"].values()))
    for name, e in first["learners"].items():
        lines.append(_row(name, e, res["learners"].get(name, {}).get("fit_seconds", "")))
    for meta, stack in res["stacks"].items():
        lines.append(_row(f"stack `{meta}`", stack["stack"], stack["seconds"]))
    return [*lines, ""]


def per_prompt_table(res: dict[str, Any]) -> list[str]:
    """Cross-fitted thresholded QWK per prompt (the ASAP protocol's view)."""
    first = next(iter(res["stacks"].values()))
    rows = {**first["learners"]}
    rows.update({f"stack `{m}`": s["stack"] for m, s in res["stacks"].items()})
    prompts = sorted(next(iter(rows.values())).get("per_prompt", {}), key=str)
    if not prompts or len(prompts) > MAX_PROMPT_COLUMNS:
        return []
    lines = [
        "| model | " + " | ".join(prompts) + " | mean |",
        "| --- |" + " --- |" * (len(prompts) + 1),
    ]
    for name, e in rows.items():
        values = [e["per_prompt"][p] for p in prompts]
        cells = " | ".join(f"{v:.3f}" for v in values)
        lines.append(f"| {name} | {cells} | {sum(values) / len(values):.4f} |")
    human = res.get("human_human")
    if human:
        values = [human[p] for p in prompts]
        cells = " | ".join(f"{v:.3f}" for v in values)
        lines.append(f"| human rater1 vs rater2 | {cells} | {sum(values) / len(values):.4f} |")
    return [*lines, ""]


def best_lines(res: dict[str, Any]) -> list[str]:
    """This run's best stack and best single learner (cross-fitted), beside the references."""
    stacks = {m: s["stack"]["cross"] for m, s in res["stacks"].items()}
    first = next(iter(res["stacks"].values()))
    singles = {n: e["cross"] for n, e in first["learners"].items()}
    meta, learner = max(stacks, key=stacks.__getitem__), max(singles, key=singles.__getitem__)
    return [
        f"- this run, best stack (`{meta}`, cross-fitted thresholds): {stacks[meta]:.4f}",
        f"- this run, best single learner (`{learner}`, cross-fitted): {singles[learner]:.4f}",
    ]


TITLES = {
    "asap": "ASAP, standard 5-fold split of Taghipour & Ng (2016): mean QWK over the 8 prompts",
    "ellipse": "ELLIPSE holistic score (2,571 essays, 1-5 in half points), prompt-grouped 5 folds",
}


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "# Benchmarks",
        "",
        "What `python -m bench` (`nox -s bench -- ...`) measured; rerun it to check a change.",
        "Every learner and stack is scored three ways on its out-of-fold predictions: plain",
        "rounding, cut points fitted on all OOF rows (optimistic), and cut points fitted on the",
        "other folds only (cross-fitted: the honest number). Seconds: fit time over all folds.",
        "The transformer learner on a GPU (throughput, a MiniLM fine-tune) is in [gpu.md](gpu.md).",
        "",
        f"- machine: {results['machine']}",
        f"- command: `{results['command']}`",
        f"- peak memory (max RSS): {results['peak_rss_mib']:.0f} MiB",
        *([f"- wall time: {results['seconds'] / 60:.1f} min"] if "seconds" in results else []),
        "",
    ]
    for dataset, res in results["datasets"].items():
        lines += [f"## {TITLES.get(dataset, dataset)}", "", *quality_table(res)]
        lines += per_prompt_table(res)
        if dataset == "asap":
            lines += ["Published means over the 8 prompts on the same split:", ""]
            lines += [f"- {k}: {v}" for k, v in PUBLISHED_ASAP.items()]
            lines += [*best_lines(res), ""]
    if "quality" in results:
        from bench import bench_quality

        lines += bench_quality.markdown(results["quality"])
    if "startup" in results:
        from bench import bench_startup

        lines += bench_startup.markdown(results["startup"])
    speed_results = results.get("speed")
    if speed_results:
        m = speed_results["metrics"]
        lines += [
            "## Speed",
            "",
            f"- QWK on 17,000 labels: {m['qwk_speed']['qwk_ms']:.3f} ms vs scikit-learn "
            f"{m['qwk_speed']['sklearn_ms']:.2f} ms ({m['qwk_speed']['speed_ratio']:.0f}x)",
            f"- handcrafted features: {speed_results['handcrafted_features']['essays_per_second']}"
            f" essays/s ({speed_results['handcrafted_features']['essays']} essays)",
        ]
        for method in ("nelder-mead", "optuna"):
            e = m["ellipse"][method]
            lines.append(
                f"- {method} cut points on ELLIPSE TF-IDF ridge OOF: fit {e['fit_s']:.2f} s, "
                f"cross-fit {e['cross_fit_s']:.2f} s; QWK {m['ellipse']['rounded']:.4f} rounded "
                f"-> {e['in_sample']:.4f} in-sample, {e['cross_fitted']:.4f} cross-fitted"
            )
        for meta, t in speed_results["stack_10_learners_x_17000"].items():
            lines.append(
                f"- stack `{meta}`, 10 learners x 17,000 essays: {t['seconds']} s "
                f"(nested CV {t['nested_cv_seconds']} s)"
            )
        lines.append("")
    if "scale" in results:
        from bench import bench_scale

        lines += bench_scale.markdown(results["scale"])
    if "score" in results:
        from bench import bench_score

        lines += bench_score.markdown(results["score"])
    return "\n".join(lines)


def _with_saved_sections(out: Path, results: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """A run of the scoring section alone replaces that section only: in the saved JSON, and in
    the page, whose other sections may carry notes written by hand."""
    from bench import bench_score

    json_path, page_path = out / "benchmarks.json", out / "benchmarks.md"
    if not (json_path.is_file() and page_path.is_file()):
        return results, markdown(results)
    saved = json.loads(json_path.read_text(encoding="utf-8"))
    head = page_path.read_text(encoding="utf-8").split(bench_score.HEADING)[0].rstrip("\n")
    section = "\n".join(bench_score.markdown(results["score"]))
    return {**saved, "score": results["score"]}, f"{head}\n\n{section}"


def quality_section(args: argparse.Namespace, results: dict[str, Any]) -> int:
    """Run bench_quality on the datasets given; each part (ASAP, ELLIPSE, leave-one-prompt-out)
    replaces its own part of the saved section as soon as it is measured, so a long run that
    stops early keeps what it finished, and a run of one dataset keeps the others."""
    from bench import bench_quality as bq

    metas = [m for m in args.metas.split(",") if m]
    run = {"machine": results["machine"], "command": results["command"]}
    asap_learners = (
        args.quality_learners if args.quality_asap_learners is None else args.quality_asap_learners
    )
    asap_specs = bq.parse_specs(asap_learners) if args.asap else []
    if asap_specs:
        print("ASAP (standard split): ablation", flush=True)
        ws = asap_workspace(args.asap, args.cache)
        bq.write_configs(ws, asap_specs)
        _save_quality(args.out, "asap", {**bq.ablation(ws, asap_specs, metas, "asap"), **run})
    if args.ellipse:
        print("ELLIPSE (prompt-grouped): ablation", flush=True)
        ws = ellipse_workspace(args.ellipse, args.cache)
        specs = bq.parse_specs(args.quality_learners, args.ellipse / ELL_EXTRA_FILE)
        bq.write_configs(ws, specs)
        _save_quality(args.out, "ellipse", {**bq.ablation(ws, specs, metas, "ellipse"), **run})
    if args.asap and bq.parse_specs(args.lopo_learners):
        print("ASAP leave-one-prompt-out", flush=True)
        ws = asap_lopo_workspace(args.asap, args.cache)
        _save_quality(
            args.out, "lopo", {**bq.lopo(ws, bq.parse_specs(args.lopo_learners), metas), **run}
        )
    return 0


def _save_quality(out: Path, part: str, value: dict[str, Any]) -> None:
    """``value`` as part ``part`` of the saved quality section (JSON and page), atomically."""
    from bench import bench_quality as bq

    json_path = out / "benchmarks.json"
    saved = json.loads(json_path.read_text(encoding="utf-8")) if json_path.is_file() else {}
    section = saved.get("quality") or {}
    section = {"datasets": dict(section.get("datasets", {})), "lopo": section.get("lopo")}
    if part == "lopo":
        section["lopo"] = value
    else:
        section["datasets"][part] = value
    section = {k: v for k, v in section.items() if v}
    _save_section(out, "quality", section, bq.HEADING, bq.markdown(section))
    print(f"wrote {out / 'benchmarks.md'} ({part})", flush=True)


def _save_section(
    out: Path, key: str, value: dict[str, Any], heading: str, lines: list[str]
) -> None:
    """``value`` as section ``key`` of the saved JSON and ``lines`` as the page's section
    ``heading``, atomically; the other sections, and notes written by hand in them, are kept."""
    from bench import bench_quality as bq

    json_path, page_path = out / "benchmarks.json", out / "benchmarks.md"
    saved = json.loads(json_path.read_text(encoding="utf-8")) if json_path.is_file() else {}
    page = page_path.read_text(encoding="utf-8") if page_path.is_file() else "# Benchmarks\n"
    page = bq.replace_section(page, heading, lines, before="## Speed")
    write_json_atomic(json_path, {**saved, key: value})
    write_text_atomic(page_path, page)


def startup_section(args: argparse.Namespace, results: dict[str, Any]) -> int:
    """Time the command line's start-up (and with ``--suite`` the README's test command) and
    replace only that section of the saved JSON and page."""
    from bench import bench_startup

    run = {"machine": results["machine"], "command": results["command"]}
    section = {**bench_startup.run(suite=args.suite), **run}
    _save_section(
        args.out, "startup", section, bench_startup.HEADING, bench_startup.markdown(section)
    )
    print("\n".join(bench_startup.markdown(section)), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--asap", type=Path)
    parser.add_argument("--ellipse", type=Path)
    parser.add_argument("--learners", default="ridge_tfidf,lgbm,xgb,svr_emb")
    parser.add_argument(
        "--asap-learners", help="Learners for ASAP (default: --learners); embeddings are slow"
    )
    parser.add_argument("--metas", default="ridge,nnls,hill")
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT.parent / "docs")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--score", action="store_true", help="Time scoring with a bundle.")
    parser.add_argument("--score-learners", default="ridge_tfidf,lgbm,xgb")
    parser.add_argument("--scale", action="store_true", help="Time sequential, --jobs and Ray.")
    parser.add_argument("--scale-learners", default="ridge_tfidf,lgbm,xgb")
    parser.add_argument("--jobs", type=int, default=2, help="Workers of the scaling section.")
    parser.add_argument(
        "--quality", action="store_true", help="Only the CPU-quality section (ablation, LOPO)."
    )
    parser.add_argument("--quality-learners", default="ridge_tfidf,lgbm,xgb")
    parser.add_argument(
        "--quality-asap-learners", help="Default: --quality-learners; '' skips the ASAP ablation"
    )
    parser.add_argument(
        "--lopo-learners", default="ridge_tfidf,lgbm", help="ASAP leave-one-prompt-out; '' skips"
    )
    parser.add_argument(
        "--startup", action="store_true", help="Only the command line's start-up section."
    )
    parser.add_argument(
        "--suite", action="store_true", help="With --startup: also time the README's tests."
    )
    parser.add_argument(
        "--render", action="store_true", help="Only rewrite benchmarks.md from benchmarks.json."
    )
    args = parser.parse_args(argv)
    if args.render:
        saved = json.loads((args.out / "benchmarks.json").read_text(encoding="utf-8"))
        write_text_atomic(args.out / "benchmarks.md", markdown(saved))
        return 0
    learners = [n for n in args.learners.split(",") if n]
    metas = [m for m in args.metas.split(",") if m]
    results: dict[str, Any] = {
        "machine": f"{platform.processor() or platform.machine()}, {platform.system()}, "
        f"Python {platform.python_version()}",
        "command": "python -m bench " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "datasets": {},
    }
    if args.quality:
        return quality_section(args, results)
    if args.startup:
        return startup_section(args, results)
    started = time.perf_counter()
    texts: list[str] = []
    if args.ellipse:
        print("ELLIPSE (prompt-grouped 5 folds)", flush=True)
        ws = ellipse_workspace(args.ellipse, args.cache)
        texts += load_workspace_dataset(ws)[0].texts
        results["datasets"]["ellipse"] = quality(ws, learners, metas)
    if args.asap:
        print("ASAP (Taghipour & Ng standard split)", flush=True)
        ws = asap_workspace(args.asap, args.cache)
        texts += load_workspace_dataset(ws)[0].texts
        asap_learners = [n for n in (args.asap_learners or args.learners).split(",") if n]
        results["datasets"]["asap"] = quality(ws, asap_learners, metas)
        results["datasets"]["asap"]["human_human"] = human_agreement(args.asap)
    if not args.skip_speed:
        results["speed"] = speed(texts, args.ellipse)
    if args.score:
        from bench import bench_score

        essays = ellipse_file(args.ellipse) if args.ellipse else bench_score.ELLIPSE
        learners = [n for n in args.score_learners.split(",") if n]
        section = bench_score.run(learners, essays_path=essays)
        results["score"] = {**section, "machine": results["machine"], "command": results["command"]}
    if args.scale:
        from bench import bench_scale

        learners = [n for n in args.scale_learners.split(",") if n]
        results["scale"] = bench_scale.run(learners, asap=args.asap, jobs=args.jobs)
    results["seconds"] = round(time.perf_counter() - started, 1)
    results["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    page = markdown(results)
    if "score" in results and not results["datasets"] and "speed" not in results:
        results, page = _with_saved_sections(args.out, results)
    write_json_atomic(args.out / "benchmarks.json", results)
    write_text_atomic(args.out / "benchmarks.md", page)
    print(f"wrote {args.out / 'benchmarks.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
