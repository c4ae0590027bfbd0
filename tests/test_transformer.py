"""The transformer learner on real ELLIPSE essays, with tiny random DeBERTa-v3-shaped encoders
(hidden 32, 2 layers) and the offline MiniLM tokenizer, so everything runs on a CPU offline."""

from __future__ import annotations

import copy
import importlib.util
import socket
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import polars as pl
import pytest
import torch
import torch.distributed as dist
from transformers import AutoModel, AutoTokenizer, DebertaV2Model, PreTrainedTokenizerBase

from aes_ensemble.config import load_config, validate
from aes_ensemble.data import Essays, read_essays
from aes_ensemble.errors import AesError
from aes_ensemble.learners.registry import learner_class
from aes_ensemble.learners.transformer import TransformerConfig, TransformerLearner
from aes_ensemble.learners.transformer.attention import (
    FLASH,
    FUSED_PAD_MULTIPLE,
    pad_multiple,
    swap_in_fused,
    use_attention,
)
from aes_ensemble.learners.transformer.data import (
    collate,
    encode,
    length_grouped_batches,
    make_batcher,
    pack,
    shard_batches,
)
from aes_ensemble.learners.transformer.inference import predict_outputs
from aes_ensemble.learners.transformer.learner import resolve_model_path
from aes_ensemble.learners.transformer.model import (
    EssayScorer,
    ScoringHead,
    build_scorer,
    parameter_groups,
    regression_loss,
)
from aes_ensemble.learners.transformer.tracking import check_available
from aes_ensemble.learners.transformer.train import TrainData, train_scorer
from aes_ensemble.scales import ScoreScale, ScoreScales

REPO = Path(__file__).resolve().parents[1]


def _load_bench() -> ModuleType:
    """``bench/`` is a folder of scripts beside the package, not an installed module."""
    spec = importlib.util.spec_from_file_location(
        "bench_transformer", REPO / "bench" / "bench_transformer.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench_transformer = _load_bench()
deberta_v3_config = bench_transformer.deberta_v3_config


@pytest.fixture(scope="module")
def essays(ellipse_path: Path) -> Essays:
    return read_essays(ellipse_path / "ELLIPSE_Final_github_test.csv")


@pytest.fixture(scope="module")
def train(essays: Essays) -> Essays:
    return essays.take(np.arange(48))


@pytest.fixture(scope="module")
def valid(essays: Essays) -> Essays:
    return essays.take(np.arange(48, 72))


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(resolve_model_path("all-MiniLM-L6-v2"))


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory, tokenizer: PreTrainedTokenizerBase) -> Path:
    """A random DeBERTa-v3-shaped encoder (hidden 32, 2 layers) with a WordPiece tokenizer."""
    folder = tmp_path_factory.mktemp("tiny_deberta")
    torch.manual_seed(0)
    DebertaV2Model(deberta_v3_config(len(tokenizer), 32, 2, 2, 64)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def make_config(model_dir: Path, **sections: dict[str, Any]) -> TransformerConfig:
    data: dict[str, Any] = {
        "kind": "transformer",
        "seed": 7,
        "model": {"pretrained_model_name_or_path": str(model_dir), "max_length": 128},
        "train": {"epochs": 1, "batch_size": 16, "learning_rate": 1e-3, "progress_bar": False},
        "predict": {"batch_size": 32},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return validate(TransformerConfig, data)


def fit(config: TransformerConfig, train: Essays, valid: Essays | None) -> TransformerLearner:
    learner = learner_class("transformer")(config, train.scales)
    assert isinstance(learner, TransformerLearner)
    return learner.fit(train, valid)


@pytest.fixture(scope="module")
def fitted(tiny_dir: Path, train: Essays, valid: Essays) -> TransformerLearner:
    """Predictions in bf16, so fit records the fp32-vs-bf16 difference."""
    config = make_config(tiny_dir, predict={"dtype": "bf16"})
    return fit(config, train, valid)


@pytest.mark.parametrize(
    ("model", "train_extra"),
    [
        ({"head": "regression", "pooling": "mean", "loss": "mse"}, {}),
        ({"head": "regression", "pooling": "cls", "loss": "bce"}, {"scheduler": "linear"}),
        ({"head": "ordinal", "pooling": "attention"}, {}),
        (
            {
                "head": "ordinal",
                "pooling": "gem",
                "reinit_layers": 1,
                "freeze_embeddings": True,
                "gradient_checkpointing": True,
            },
            {"layerwise_lr_decay": 0.8, "batch_size": 8, "effective_batch_size": 24},
        ),
    ],
)
def test_heads_and_poolings_predict_on_the_scale(
    tiny_dir: Path,
    train: Essays,
    valid: Essays,
    model: dict[str, Any],
    train_extra: dict[str, Any],
) -> None:
    learner = fit(make_config(tiny_dir, model=model, train=train_extra), train, valid)
    prediction = learner.predict(valid)
    scale = valid.scales.for_prompt(None)
    assert prediction.pred.shape == (len(valid),)
    assert np.all(np.isfinite(prediction.pred))
    assert np.all((prediction.pred >= scale.low) & (prediction.pred <= scale.high))
    assert 0.0 <= learner.meta["history"][0]["train_loss"] < 10
    assert learner.meta["history"][0]["valid_qwk"] is not None
    if model["head"] == "ordinal":
        assert prediction.proba is not None
        assert prediction.proba.shape == (len(valid), scale.n_levels)
        assert np.all(prediction.proba >= 0)
        np.testing.assert_allclose(prediction.proba.sum(axis=1), 1.0, atol=1e-9)
        assert prediction.proba_labels == ("1", "1.5", "2", "2.5", "3", "3.5", "4", "4.5", "5")
        expected = prediction.proba @ scale.levels
        np.testing.assert_allclose(prediction.pred, expected, atol=1e-9)
    else:
        assert prediction.proba is None


def test_save_load_and_half_precision_difference(
    fitted: TransformerLearner, tiny_dir: Path, valid: Essays, tmp_path: Path
) -> None:
    before = fitted.predict(valid)
    fitted.save(tmp_path / "fold_0")
    names = {p.name for p in (tmp_path / "fold_0").iterdir()}
    assert {"model.safetensors", "config.json", "head.safetensors", "learner.json"} <= names
    assert "tokenizer.json" in names or "vocab.txt" in names

    loaded = TransformerLearner.load(tmp_path / "fold_0", fitted.config, valid.scales)
    np.testing.assert_array_equal(loaded.predict(valid).pred, before.pred)

    fp32_config = fitted.config.model_copy(
        update={"predict": fitted.config.predict.model_copy(update={"dtype": "fp32"})}
    )
    full = TransformerLearner.load(tmp_path / "fold_0", fp32_config, valid.scales).predict(valid)
    measured = float(np.max(np.abs(full.pred - before.pred)))
    recorded = loaded.meta["half_precision"]
    assert recorded["dtype"] == "bf16" and recorded["essays"] == len(valid)
    assert recorded["max_abs_diff"] == pytest.approx(measured, abs=1e-12)
    assert 0.0 < measured < 0.25  # bf16 moves scores a little, never by a level


def test_load_refuses_a_config_with_another_head(
    fitted: TransformerLearner, valid: Essays, tmp_path: Path
) -> None:
    fitted.save(tmp_path)
    other = fitted.config.model_copy(
        update={"model": fitted.config.model.model_copy(update={"pooling": "gem"})}
    )
    with pytest.raises(AesError, match="pooling"):
        TransformerLearner.load(tmp_path, other, valid.scales)


def test_same_seed_gives_bit_identical_predictions(
    fitted: TransformerLearner, train: Essays, valid: Essays
) -> None:
    again = fit(fitted.config, train, valid)
    np.testing.assert_array_equal(again.predict(valid).pred, fitted.predict(valid).pred)
    for key in ("train_loss", "valid_qwk"):
        assert [h[key] for h in again.meta["history"]] == [h[key] for h in fitted.meta["history"]]


def test_world_size_one_process_group_trains_like_a_plain_run(
    fitted: TransformerLearner, train: Essays, valid: Essays, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for key, value in {
        "WORLD_SIZE": "1",
        "RANK": "0",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
    }.items():
        monkeypatch.setenv(key, value)
    ddp = fit(fitted.config, train, valid)
    assert not dist.is_initialized()  # the group the learner opened is closed again
    np.testing.assert_allclose(ddp.predict(valid).pred, fitted.predict(valid).pred, atol=1e-6)


def test_best_epoch_selection_and_two_stages(tiny_dir: Path, train: Essays, valid: Essays) -> None:
    sources = ["persuade" if i % 2 else "kaggle" for i in range(len(train))]
    staged = Essays(train.frame.with_columns(source=pl.Series(sources)), train.scales)
    stages = [{"source": "persuade", "epochs": 2}, {"source": "kaggle", "learning_rate": 3e-4}]
    best = fit(make_config(tiny_dir, train={"stages": stages}), staged, valid)
    history = best.meta["history"]
    assert [h["stage"] for h in history] == ["persuade", "persuade", "kaggle"]
    qwks = [h["valid_qwk"] for h in history]
    assert best.meta["selected_epoch"] == best.meta["best_epoch"] == 1 + int(np.argmax(qwks))

    last = fit(
        make_config(tiny_dir, train={"stages": stages, "select_best": "last"}), staged, valid
    )
    assert last.meta["selected_epoch"] == 3

    bad = make_config(tiny_dir, train={"stages": [{"source": "kagle"}]})
    with pytest.raises(AesError, match=r"train\.stages\.0\.source.*kaggle"):
        fit(bad, staged, valid)


def test_ordinal_head_needs_one_global_scale(tiny_dir: Path, train: Essays) -> None:
    per_prompt = ScoreScales(per_prompt={p: ScoreScale(1, 5, 0.5) for p in set(train.prompts)})
    essays = Essays(train.frame, per_prompt)
    learner = TransformerLearner(make_config(tiny_dir, model={"head": "ordinal"}), per_prompt)
    with pytest.raises(AesError, match="global score scale"):
        learner.fit(essays)


@pytest.mark.skipif(
    importlib.util.find_spec("tensorboard") is not None,
    reason="tensorboard is installed here",
)
def test_report_to_a_missing_tracker_fails_before_training() -> None:
    with pytest.raises(AesError, match=r"report_to.*tensorboard"):
        check_available("tensorboard")


def test_config_overrides_and_misspelt_keys() -> None:
    config = load_config(
        TransformerConfig, REPO / "configs" / "deberta.yaml", ["train.learning_rate=3e-5"]
    )
    assert config.train.learning_rate == 3e-5
    assert config.model.pretrained_model_name_or_path == "microsoft/deberta-v3-base"
    assert (
        load_config(TransformerConfig, REPO / "configs" / "deberta_ordinal.yaml").model.head
        == "ordinal"
    )
    with pytest.raises(AesError, match="did you mean 'max_length'"):
        load_config(TransformerConfig, REPO / "configs" / "minilm.yaml", ["model.max_lenght=512"])


def test_head_tail_truncation_keeps_both_ends(
    essays: Essays, tokenizer: PreTrainedTokenizerBase
) -> None:
    text = max(essays.texts, key=len)
    full = tokenizer(text, add_special_tokens=False)["input_ids"]
    (ids,) = encode(tokenizer, [text], 66, 0.25)
    assert len(full) > 64 and len(ids) == 66
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    assert ids[1:17] == full[:16]  # a quarter of the 64-token budget from the start
    assert ids[17:-1] == full[-48:]  # the rest from the end


def test_length_grouped_batches_pad_far_less(
    essays: Essays, tokenizer: PreTrainedTokenizerBase
) -> None:
    sequences = encode(tokenizer, essays.texts[:300], 512, 0.25)
    lengths = [len(s) for s in sequences]
    batches = length_grouped_batches(lengths, 8, seed=3, group_batches=10)
    assert sorted(np.concatenate(batches).tolist()) == list(range(300))
    assert all(
        np.array_equal(a, b)
        for a, b in zip(
            batches, length_grouped_batches(lengths, 8, seed=3, group_batches=10), strict=True
        )
    )

    def pad_tokens(multiple: int, grouped: bool) -> int:
        chosen = batches if grouped else length_grouped_batches(lengths, 8, seed=3, grouped=False)
        masks = [collate([sequences[i] for i in b], 0, multiple)["attention_mask"] for b in chosen]
        return sum(int((m == 0).sum()) for m in masks)

    naive, dynamic = pad_tokens(512, grouped=False), pad_tokens(8, grouped=True)
    assert dynamic < naive / 4


def test_shards_give_every_rank_the_same_number_of_steps() -> None:
    batches = [np.array([i]) for i in range(7)]
    shards = [shard_batches(batches, rank, 3) for rank in range(3)]
    assert [len(s) for s in shards] == [3, 3, 3]
    assert {int(b[0]) for s in shards for b in s} == set(range(7))


def test_layerwise_decay_reinit_and_freezing(tiny_dir: Path) -> None:
    config = make_config(
        tiny_dir,
        model={"reinit_layers": 1, "freeze_embeddings": True},
        train={"layerwise_lr_decay": 0.5, "head_learning_rate": 1e-2},
    )
    torch.manual_seed(0)
    scorer = build_scorer(config.model, str(tiny_dir), 1)
    original = DebertaV2Model.from_pretrained(tiny_dir).state_dict()
    state = scorer.encoder.state_dict()
    top = "encoder.layer.1.attention.self.query_proj.weight"
    bottom = "encoder.layer.0.attention.self.query_proj.weight"
    assert not torch.equal(state[top], original[top])
    assert torch.equal(state[bottom], original[bottom])
    assert not any(p.requires_grad for p in scorer.encoder.embeddings.parameters())

    lr_of = {}
    for group in parameter_groups(scorer, config.train, 1e-3):
        for param in group["params"]:
            lr_of[id(param)] = group["lr"]
    named = dict(scorer.named_parameters())
    assert lr_of[id(named["head.out.weight"])] == 1e-2
    assert lr_of[id(named["encoder." + top])] == pytest.approx(1e-3)
    assert lr_of[id(named["encoder." + bottom])] == pytest.approx(5e-4)
    assert id(named["encoder.embeddings.word_embeddings.weight"]) not in lr_of


def test_minilm_fine_tune_lowers_the_loss(train: Essays, valid: Essays) -> None:
    """The real pretrained MiniLM, a few steps on 32 essays: the training loss goes down."""
    config = validate(
        TransformerConfig,
        {
            "kind": "transformer",
            "model": {"pretrained_model_name_or_path": "all-MiniLM-L6-v2", "max_length": 64},
            "train": {
                "epochs": 3,
                "batch_size": 8,
                "learning_rate": 1e-4,
                "head_learning_rate": 1e-3,
                "warmup_ratio": 0.0,
                "progress_bar": False,
            },
        },
    )
    learner = fit(config, train.take(np.arange(32)), None)
    losses = [h["train_loss"] for h in learner.meta["history"]]
    assert losses[-1] < losses[0]
    assert learner.meta["best_epoch"] is None and learner.meta["selected_epoch"] == 3
    assert learner.predict(valid.take(np.arange(8))).pred.shape == (8,)


def test_bench_smoke_runs_and_dynamic_padding_pads_less() -> None:
    results = bench_transformer.main(["--smoke"])
    eager = {(r["phase"], r["mode"]): r for r in results["runs"] if r["attention"] == "eager"}
    assert set(eager) == {(p, m) for p in ("train", "inference") for m in ("padded", "dynamic")}
    for run in eager.values():
        assert run["essays_per_s"] > 0 and run["tokens_per_s"] > 0
    assert eager["train", "dynamic"]["pad_fraction"] < eager["train", "padded"]["pad_fraction"]
    fused = [r for r in results["runs"] if r["attention"] != "eager"]
    assert len(fused) == 4 and all(r["skipped"] for r in fused)  # no CUDA here, reason given
    assert all(r["attention"].startswith("eager (") for r in fused)


def test_fused_attention_falls_back_to_eager_with_the_reason(tiny_dir: Path) -> None:
    """``auto`` keeps eager where the fused kernels cannot run; ``flash`` says why it can't."""
    cpu = torch.device("cpu")
    deberta = DebertaV2Model.from_pretrained(tiny_dir)
    before = {k: v.clone() for k, v in deberta.state_dict().items()}
    path = use_attention(deberta, "auto", cpu, torch.float32, 64)
    assert path == "eager (no CUDA device)"
    assert type(deberta.encoder).__name__ == "DebertaV2Encoder"
    assert all(torch.equal(before[k], v) for k, v in deberta.state_dict().items())
    assert use_attention(deberta, "eager", cpu, torch.float32, 64) == "eager"
    with pytest.raises(AesError, match="attention=flash: no CUDA device"):
        use_attention(deberta, "flash", cpu, torch.float32, 64)
    minilm = AutoModel.from_pretrained(resolve_model_path("all-MiniLM-L6-v2"))
    assert use_attention(minilm, "auto", cpu, torch.float32, 64) == (
        "eager (bert is not a DeBERTa encoder)"
    )


def test_learner_records_the_attention_path(fitted: TransformerLearner) -> None:
    assert fitted.meta["attention"] == "eager"  # the default; auto would say why not fused
    assert fitted.meta["pad_to_multiple_of"] == fitted.config.train.pad_to_multiple_of
    # The fused kernels compile once per width, so their widths come in coarse steps.
    assert pad_multiple(FLASH, 8) == FUSED_PAD_MULTIPLE and pad_multiple(FLASH, 256) == 256
    assert pad_multiple("eager (no CUDA device)", 8) == 8


def test_half_precision_inference_keeps_the_head_in_fp32(
    fitted: TransformerLearner, valid: Essays
) -> None:
    """A bf16 head would round every output to bf16's 8 bits; the fp32 head keeps them finer."""
    model = fitted._inference_model(torch.bfloat16, torch.device("cpu"))
    assert next(model.encoder.parameters()).dtype == torch.bfloat16
    assert next(model.head.parameters()).dtype == torch.float32
    assert next(fitted.model.parameters()).dtype == torch.float32  # the fp32 weights intact
    outputs = fitted._outputs(model, fitted._sequences(valid), torch.device("cpu"), torch.bfloat16)[
        :, 0
    ]
    in_bf16 = torch.as_tensor(outputs).to(torch.bfloat16).double().numpy()
    assert np.mean(outputs != in_bf16) > 0.5


@pytest.fixture(scope="module")
def disentangled_flash() -> ModuleType:
    """The optional fused-attention package; its PyTorch implementation runs on a CPU."""
    return pytest.importorskip(
        "disentangled_flash", reason="the optional GPU extra is not installed (pip install .[gpu])"
    )


def fused_copy(model: EssayScorer) -> EssayScorer:
    """The same weights with the fused attention (its PyTorch implementation, CPU-ready)."""
    fused = copy.deepcopy(model)
    assert swap_in_fused(fused.encoder, backend="torch")
    return fused


@pytest.mark.parametrize("pooling", ["mean", "cls", "attention", "gem"])
def test_packed_batches_score_and_backpropagate_like_padded_ones(
    disentangled_flash: ModuleType,
    essays: Essays,
    tokenizer: PreTrainedTokenizerBase,
    pooling: str,
) -> None:
    """Essays end to end in one row give the padded batch's outputs and gradients. Absolute
    positions are switched on (DeBERTa-v2 style), so restarting them per essay is checked too."""
    config = deberta_v3_config(len(tokenizer), 32, 2, 2, 64)
    config.position_biased_input = True
    torch.manual_seed(0)
    padded_model = EssayScorer(DebertaV2Model(config), ScoringHead(pooling, 32, 3)).eval()
    packed_model = fused_copy(padded_model)
    words = (60, 5, 90, 20, 35, 9)
    openings = [" ".join(t.split()[:n]) for t, n in zip(essays.texts[:6], words, strict=True)]
    sequences = encode(tokenizer, openings, 96, 0.25)
    assert len({len(s) for s in sequences}) == 6

    padded = padded_model(**collate(sequences, int(tokenizer.pad_token_id), 8))
    batch = pack(sequences)
    packed = packed_model(**batch)
    assert batch["input_ids"].shape == (1, sum(len(s) for s in sequences))
    torch.testing.assert_close(packed, padded, atol=1e-5, rtol=1e-5)

    padded.pow(2).sum().backward()
    packed.pow(2).sum().backward()
    fused_grads = dict(packed_model.named_parameters())
    for name, param in padded_model.named_parameters():
        if param.grad is not None:
            torch.testing.assert_close(fused_grads[name].grad, param.grad, atol=1e-4, rtol=1e-4)


def test_training_on_packed_batches_follows_padded_training(
    disentangled_flash: ModuleType,
    train: Essays,
    valid: Essays,
    tokenizer: PreTrainedTokenizerBase,
) -> None:
    """The training loop and prediction on packed batches (``model.padding_free``) match the
    padded ones step for step, dropout off so both see the same arithmetic."""
    config = deberta_v3_config(len(tokenizer), 32, 2, 2, 64)
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    torch.manual_seed(0)
    padded_model = EssayScorer(DebertaV2Model(config), ScoringHead("mean", 32, 1))
    packed_model = fused_copy(padded_model)
    data = TrainData(
        encode(tokenizer, train.texts, 512, 0.25),
        torch.as_tensor(train.scales.normalise(train.scores, train.prompts), dtype=torch.float32),
        [None] * len(train),
    )
    section = make_config(Path("unused"), train={"epochs": 2, "batch_size": 8}).train
    cpu = torch.device("cpu")

    def run(model: EssayScorer, packed: bool) -> tuple[list[dict[str, Any]], np.ndarray]:
        batcher = make_batcher(int(tokenizer.pad_token_id), 8, packed)
        result = train_scorer(
            model,
            data,
            section,
            seed=3,
            device=cpu,
            batcher=batcher,
            loss_fn=lambda out, target: regression_loss(out, target, "mse"),
            evaluate=None,
            run_config={},
        )
        sequences = encode(tokenizer, valid.texts, 512, 0.25)
        outputs = predict_outputs(
            model, sequences, batch_size=16, batcher=batcher, device=cpu, dtype=torch.float32
        )
        return result.history, outputs

    padded_history, padded_outputs = run(padded_model, packed=False)
    packed_history, packed_outputs = run(packed_model, packed=True)
    for a, b in zip(padded_history, packed_history, strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
        assert b["optimizer_steps"] == a["optimizer_steps"]
        assert b["tokens_per_second"] * b["seconds"] == pytest.approx(
            a["tokens_per_second"] * a["seconds"]  # real tokens only, in both
        )
    assert padded_history[1]["train_loss"] < padded_history[0]["train_loss"]
    np.testing.assert_allclose(packed_outputs, padded_outputs, atol=1e-4)


def test_padding_free_needs_the_fused_kernels(tiny_dir: Path, train: Essays, valid: Essays) -> None:
    """Asked with eager attention it is a config error; where the kernels cannot run (no GPU
    here) ``auto`` trains on padded batches and records why."""
    with pytest.raises(AesError, match=r"key 'model': model.padding_free needs the fused"):
        make_config(tiny_dir, model={"padding_free": True})
    with pytest.raises(AesError, match="gradient_checkpointing does not apply to packed"):
        make_config(
            tiny_dir,
            model={"attention": "flash", "padding_free": True, "gradient_checkpointing": True},
        )
    config = make_config(
        tiny_dir, model={"attention": "auto", "padding_free": True}, train={"max_steps": 2}
    )
    learner = fit(config, train, valid)
    assert learner.meta["attention"] == "eager (no CUDA device)"
    assert learner.meta["padding_free"] is False
    assert learner.predict(valid).pred.shape == (len(valid),)


def test_bench_times_packed_batches_compiled(disentangled_flash: ModuleType) -> None:
    """The bench's packed mode, compiled as the GPU check runs it, with the package's PyTorch
    implementation standing in for the Triton kernels: no pad token is computed."""
    args = "--smoke --phases train --modes dynamic,packed --attentions eager,flash-torch"
    results = bench_transformer.main([*args.split(), "--compile", "--profile", "2"])
    runs = {(r["attention"], r["mode"]): r for r in results["runs"]}
    packed = runs["disentangled-flash torch", "packed"]
    dynamic = runs["eager", "dynamic"]
    assert packed["compiled"] and dynamic["compiled"]
    assert packed["essays_per_s"] > 0 and packed["pad_fraction"] == 0.0 < dynamic["pad_fraction"]
    assert runs["eager (packed batches need the fused training kernels)", "packed"]["skipped"]
    profiled = packed["profile"]
    assert profiled["steps"] == 2 and profiled["busy_ms_per_step"] > 0
    assert len(profiled["top"]) == 12 and profiled["top"][0]["ms_per_step"] > 0
