"""bench/bench_quality.py: the ablation and leave-one-prompt-out harness on tiny real data (four
prompts of the embedded sample, each with its own scale entry as ASAP's prompts have), and the
page section it rewrites without touching the others."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import polars as pl
import pytest
import yaml

from aes_ensemble.data import load_workspace_dataset
from aes_ensemble.errors import AesError
from aes_ensemble.folds import load_folds
from aes_ensemble.learners.registry import load_learner_config
from aes_ensemble.metrics import headline_qwk
from aes_ensemble.sample import TRAIN, sample_path
from aes_ensemble.store import PredictionStore
from aes_ensemble.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
PROMPTS = ["Being busy", "Career commitment", "Distance learning", "Impact of technology"]
RIDGE = "kind: ridge\nseed: 1\nfeatures: {handcrafted: true, scale: true}\nparams: {alpha: 3.0}\n"


def _bench_quality() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_quality", REPO / "bench/bench_quality.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


bq = _bench_quality()


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """The sample's essays of four prompts in one fold each; every prompt has its own scale
    entry (per-prompt scales, as ASAP), so a per-prompt learner could not score a held-out
    prompt. The folds are saved here, so each test runs alone or in any order."""
    root = tmp_path_factory.mktemp("quality")
    frame = pl.read_csv(sample_path(TRAIN)).filter(pl.col("prompt").is_in(PROMPTS))
    frame.write_csv(root / "essays.csv")
    workspace = Workspace.at(root / "ws")
    workspace.configs_dir.mkdir(parents=True)
    data = {
        "train": str(root / "essays.csv"),
        "format": "ellipse",
        "per_prompt_scales": {p: "1-5:0.5" for p in PROMPTS},
    }
    workspace.data_config_path.write_text(yaml.safe_dump(data), encoding="utf-8")
    (workspace.configs_dir / "ridge_hc.yaml").write_text(RIDGE, encoding="utf-8")
    bq.lopo_folds(workspace)
    return workspace


def test_lopo_holds_out_one_prompt_per_fold_and_scores_it_with_one_model(ws: Workspace) -> None:
    specs = bq.parse_specs("ridge_hc,ridge_strong=ridge_hc@params.alpha=300")
    res = bq.lopo(ws, specs, ["ridge", "mean"])
    folds = load_folds(ws).frame
    assert folds["fold"].n_unique() == len(PROMPTS) == bq.check_one_prompt_per_fold(ws)
    for spec in specs:
        assert load_learner_config(ws.config_path(spec.name)).per_prompt is False
    assert load_learner_config(ws.config_path("ridge_strong")).params.alpha == 300
    train, _ = load_workspace_dataset(ws)
    oof = PredictionStore(ws.oof_dir).read("ridge_hc").oof
    pred = dict(zip(oof["essay_id"].to_list(), oof["pred"].to_list(), strict=True))
    rounded = train.scales.round([pred[i] for i in train.ids], train.prompts)
    expected = headline_qwk(train.scores, rounded, train.prompts, train.scales)
    assert res["learners"]["ridge_hc"]["plain"] == pytest.approx(expected)
    assert set(res["learners"]["ridge_hc"]["per_prompt_plain"]) == set(PROMPTS)
    best_single = max(e["plain"] for e in res["learners"].values())
    best = res["stacks"][res["best_stack"]]["plain"]
    assert res["stack_beats_best_learner"] is (best >= best_single)
    page = "\n".join(bq.markdown({"lopo": {**res, "command": "c", "machine": "m"}}))
    assert "leave-one-prompt-out" in page and f"{expected:.4f}" in page


def test_ablation_gain_is_the_full_stack_minus_the_stack_without(ws: Workspace) -> None:
    specs = bq.parse_specs("ridge_hc,ridge_strong=ridge_hc@params.alpha=300,ling:lexical")
    bq.write_configs(ws, specs, bq.LOPO_SETTING)  # the module's folds hold one prompt each
    res = bq.ablation(ws, specs, ["mean"], "ellipse")
    full = res["stacks"]["mean"]["cross"]
    stacker = bq.Stacker(ws, ["ridge_hc", "ridge_strong"])
    for name, other in (("ridge_hc", "ridge_strong"), ("ridge_strong", "ridge_hc")):
        e = res["learners"][name]
        # the cheap nested-CV-only number is the one the full stack run gives
        alone_stack = stacker.run([other], "mean").summary["leaderboard"][-1]["cross"]
        assert e["stack_without"] == pytest.approx(alone_stack)
        assert e["gain_in_stack"] == pytest.approx(full - e["stack_without"])
        assert isinstance(e["fit_seconds"], float)
    # a probe is measured alone and added to the stack, never a member of it
    probe = res["learners"]["ling_lexical"]
    members = ["ridge_hc", "ridge_strong"]
    assert stacker.run(members, "mean").summary["leaderboard"][-1]["cross"] == pytest.approx(full)
    with_it = bq.Stacker(ws, [*members, "ling_lexical"]).run([*members, "ling_lexical"], "mean")
    board = {e["name"]: e for e in with_it.summary["leaderboard"]}
    assert probe["stack_with"] == pytest.approx(board["stack_mean"]["cross"])
    assert probe["gain_in_stack"] == pytest.approx(probe["stack_with"] - full)
    assert probe["cross"] == pytest.approx(board["ling_lexical"]["cross"])
    config = load_learner_config(ws.config_path("ling_lexical"))
    assert config.features.tfidf is None and config.features.linguistic.lexical
    assert not config.features.linguistic.spelling and not config.features.handcrafted
    assert res["goal"] == 0.675 and res["reached"] is (full >= 0.675)


def test_a_bad_learner_spec_is_one_line() -> None:
    with pytest.raises(AesError, match="must be NAME or NAME=BASE@key=value"):
        bq.parse_specs("ridge_tfidf,=lgbm@a=1")
    with pytest.raises(
        AesError, match="unknown linguistic family 'speling' \\(did you mean 'spelling'"
    ):
        bq.parse_specs("ling:speling")
    assert bq.parse_specs("a, b=c@x=1@y=2") == [
        bq.Spec("a", "a"),
        bq.Spec("b", "c", ("x=1", "y=2")),
    ]


def test_an_extra_variant_is_its_config_trained_with_the_ell_essays(
    ws: Workspace, tmp_path: Path
) -> None:
    extra = tmp_path / "ell.csv"
    with pytest.raises(AesError, match="'ridge_hc\\+extra' needs the ELLIPSE folder"):
        bq.parse_specs("ridge_hc+extra")
    specs = bq.parse_specs("ridge_hc+extra", extra)
    assert [s.name for s in specs] == ["ridge_hc_extra"]
    bq.write_configs(ws, specs)
    config = load_learner_config(ws.config_path("ridge_hc_extra"))
    assert config.extra_train is not None and config.extra_train.path == extra.resolve()
    assert list(config.extra_train.score_columns) == list(bq.ELL_ANALYTIC)
    assert config.params == load_learner_config(ws.config_path("ridge_hc")).params


def test_a_meta_spec_switches_meta_features_on(ws: Workspace) -> None:
    bq.lopo_folds(ws)
    specs = bq.parse_specs("ridge_hc")
    bq.write_configs(ws, specs, bq.LOPO_SETTING)
    bq.fit_all(ws, specs)
    stacker = bq.Stacker(ws, ["ridge_hc"])
    names = stacker.run(["ridge_hc"], "ridge+prompt_weights+length").summary["feature_names"]
    assert names[:2] == ["ridge_hc", "log_words"]
    assert names[2:] == [
        part for p in sorted(PROMPTS) for part in (f"ridge_hc|prompt={p}", f"prompt={p}")
    ]
    plain = stacker.run(["ridge_hc"], "ridge")
    assert plain.summary["feature_names"] == ["ridge_hc"]
    assert plain.summary["thresholds"] == "nelder-mead"
    assert stacker.run(["ridge_hc"], "ridge:none").summary["thresholds"] == "none"


def test_replace_section_keeps_the_other_sections_and_their_notes() -> None:
    page = "# Benchmarks\n\n## ASAP\n\nnote by hand\n\n## Speed\n\n- fast\n"
    first = bq.replace_section(page, bq.HEADING, [bq.HEADING, "", "one"], before="## Speed")
    assert (
        first
        == f"# Benchmarks\n\n## ASAP\n\nnote by hand\n\n{bq.HEADING}\n\none\n\n## Speed\n\n- fast\n"
    )
    again = bq.replace_section(first, bq.HEADING, [bq.HEADING, "", "two"], before="## Speed")
    assert again == first.replace("one", "two")
    last = bq.replace_section("# B\n", bq.HEADING, [bq.HEADING], before="## Speed")
    assert last == f"# B\n\n{bq.HEADING}\n"
