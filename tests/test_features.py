"""Features: handcrafted values by hand, the cache under two writers, TF-IDF and pipeline round
trips, and real MiniLM embeddings (offline copy) on real ELLIPSE essays."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from aes_ensemble.config import read_yaml, validate
from aes_ensemble.data import Essays, read_essays
from aes_ensemble.errors import AesError
from aes_ensemble.features import (
    EmbeddingConfig,
    FeatureCache,
    FeatureConfig,
    FeaturePipeline,
    TfidfConfig,
    TfidfFeatures,
    embed_texts,
    handcrafted_features,
    handcrafted_matrix,
)
from aes_ensemble.features.embeddings import chunk_token_ids, load_model, resolve_model
from aes_ensemble.features.handcrafted import feature_names
from aes_ensemble.features.shared import shared_features
from aes_ensemble.features.tfidf import shared_transform
from aes_ensemble.sample import TEST, TRAIN, sample_path

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ellipse(ellipse_csv_path: Path) -> Essays:
    return read_essays(ellipse_csv_path, data_format="ellipse")


@pytest.fixture(scope="module")
def short_essays(ellipse: Essays) -> Essays:
    """The 20 shortest ELLIPSE essays: one MiniLM window each, so embedding them is quick."""
    lengths = ellipse.frame["full_text"].str.len_chars().to_numpy()
    return ellipse.take(np.argsort(lengths, kind="stable")[:20])


def _row(text: str) -> dict[str, float]:
    return handcrafted_features([text]).row(0, named=True)


# --- handcrafted -------------------------------------------------------------------------------


def test_handcrafted_counts_match_hand_computed_values() -> None:
    f = _row("One two. Three four five!")
    assert f["n_chars"] == 25
    assert f["n_words"] == 5
    assert f["n_sentences"] == 2
    assert f["n_paragraphs"] == 1
    assert f["word_len_mean"] == pytest.approx((3 + 3 + 5 + 4 + 4) / 5)
    assert f["sentence_len_mean"] == 2.5
    assert f["sentence_len_max"] == 3
    assert f["sentence_len_std"] == pytest.approx(0.5)
    assert f["exclamations_per_word"] == pytest.approx(1 / 5)
    assert f["capital_starts"] == 1.0
    assert f["ttr"] == 1.0


def test_handcrafted_paragraphs_capitals_and_lowercase_i() -> None:
    f = _row("First para here.\n\nSecond one? yes i am.\nThird")
    assert f["n_paragraphs"] == 3
    assert f["n_sentences"] == 4  # a line break ends a sentence too
    assert f["capital_starts"] == pytest.approx(3 / 4)
    assert f["n_words"] == 9
    assert f["lowercase_i_per_word"] == pytest.approx(1 / 9)
    assert f["paragraph_len_mean"] == pytest.approx(9 / 3)
    assert f["questions_per_word"] == pytest.approx(1 / 9)


def test_handcrafted_lexical_features() -> None:
    f = _row("the the the cat")
    assert f["ttr"] == 0.5
    assert f["root_ttr"] == pytest.approx(2 / 2)
    assert f["unique_bigram_ratio"] == pytest.approx(2 / 3)  # "the the" twice, "the cat"
    assert f["stopword_share"] == pytest.approx(3 / 4)
    g = _row("Teh cat sat. Don't worry, it costs 3.5 dollars.")
    assert g["n_words"] == 9  # "Don't" and "3.5" are one word each
    assert g["oov_share"] == pytest.approx(1 / 8)  # "teh" of 8 alphabetic words
    assert g["commas_per_word"] == pytest.approx(1 / 9)
    assert g["apostrophes_per_word"] == pytest.approx(1 / 9)
    h = _row("However, this is true. In addition, that holds. I see THE END")
    assert h["connectives_per_word"] == pytest.approx(2 / 12)
    assert h["connectives_per_sentence"] == pytest.approx(2 / 3)
    assert h["allcaps_per_word"] == pytest.approx(2 / 12)  # THE, END; not "I"


def test_handcrafted_schema_and_degenerate_texts() -> None:
    frame = handcrafted_features(["!!", "   ", "Word", "One two. Three four five!"])
    assert frame.columns == list(feature_names())
    assert len(set(frame.columns)) == len(frame.columns) >= 35
    assert all(dtype == pl.Float64 for dtype in frame.dtypes)
    assert frame.null_count().sum_horizontal().item() == 0
    values = frame.to_numpy()
    assert np.isfinite(values).all()
    assert frame["n_chars"].to_list()[:2] == [2, 3]
    assert (values[:2, 1:] == 0).all()  # no words: every other feature is 0, not NaN
    assert frame["n_words"].to_list() == [0, 0, 1, 5]


def test_handcrafted_agree_with_ellipse_published_counts(ellipse_csv_path: Path) -> None:
    raw = pl.read_csv(ellipse_csv_path).head(300)
    f = handcrafted_features(raw["full_text"].to_list())
    assert f.height == 300
    for ours, theirs in [("n_words", "num_words3"), ("n_paragraphs", "num_para")]:
        r = np.corrcoef(f[ours].to_numpy(), raw[theirs].to_numpy())[0, 1]
        assert r > 0.99, (ours, theirs, r)
    assert np.corrcoef(f["n_sentences"].to_numpy(), raw["num_sent"].to_numpy())[0, 1] > 0.95


def test_handcrafted_matrix_is_cached(tmp_path: Path, ellipse: Essays) -> None:
    texts = ellipse.texts[:50]
    cache = FeatureCache(tmp_path)
    first = handcrafted_matrix(texts, cache)
    assert first.dtype == np.float32 and first.shape == (50, len(feature_names()))
    np.testing.assert_allclose(first, handcrafted_features(texts).to_numpy(), rtol=1e-6)
    assert np.array_equal(handcrafted_matrix(texts[::-1], FeatureCache(tmp_path)), first[::-1])
    assert len(list(tmp_path.rglob("shard-*.npy"))) == 1


def test_handcrafted_rows_do_not_depend_on_the_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Computed in batches (so progress moves), each row equals the row of one single pass."""
    from aes_ensemble.features import handcrafted
    from aes_ensemble.sample import TRAIN, sample_path

    texts = read_essays(sample_path(TRAIN), data_format="ellipse").texts[:60]
    whole = handcrafted_features(texts).to_numpy().astype(np.float32)
    monkeypatch.setattr(handcrafted, "BATCH", 7)
    assert np.array_equal(handcrafted_matrix(texts), whole)


# --- cache -------------------------------------------------------------------------------------


class Counter:
    """A compute function that records what it was asked for."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.array([[len(t), t.count("a"), float(sum(map(ord, t)))] for t in texts])


def test_cache_computes_only_new_texts(tmp_path: Path) -> None:
    compute = Counter()
    cache = FeatureCache(tmp_path)
    first = cache.get_or_compute("toy", "v1", ["aa", "b", "aa"], compute)
    assert compute.calls == [["aa", "b"]]  # the repeat is computed once
    assert first.dtype == np.float32 and first.shape == (3, 3)
    assert np.array_equal(first[0], first[2])

    again = FeatureCache(tmp_path).get_or_compute("toy", "v1", ["b", "ccc", "aa"], compute)
    assert compute.calls[1:] == [["ccc"]]
    assert np.array_equal(again[0], first[1]) and np.array_equal(again[2], first[0])
    np.testing.assert_array_equal(again[1], [3, 0, sum(map(ord, "ccc"))])

    assert cache.get_or_compute("toy", "v1", ["aa", "ccc"], compute).shape == (2, 3)
    assert len(compute.calls) == 2
    cache.get_or_compute("toy", "v2", ["aa"], compute)  # another config key: its own rows
    assert compute.calls[-1] == ["aa"]
    files = {p.suffix for p in tmp_path.rglob("*") if p.is_file()}
    assert files == {".npy", ".json"}


def test_cache_without_directory_always_computes() -> None:
    compute = Counter()
    cache = FeatureCache(None)
    cache.get_or_compute("toy", "v1", ["x"], compute)
    cache.get_or_compute("toy", "v1", ["x"], compute)
    assert compute.calls == [["x"], ["x"]]


def test_cache_without_directory_shares_rows_within_a_scope(tmp_path: Path) -> None:
    """Inside ``shared_features()`` each (kind, config key, text) is computed once, for every
    cache without a directory and in nested blocks; nothing is written; a new block computes
    afresh. A cache with a directory keeps to its files."""
    compute = Counter()
    with shared_features() as scope:
        first = FeatureCache(None).get_or_compute("toy", "v1", ["aa", "b", "aa"], compute)
        with shared_features() as inner:
            assert inner is scope
            again = FeatureCache(None).get_or_compute("toy", "v1", ["b", "ccc", "aa"], compute)
        FeatureCache(None).get_or_compute("toy", "v2", ["aa"], compute)
        FeatureCache(tmp_path).get_or_compute("toy", "v1", ["aa"], compute)
    assert compute.calls == [["aa", "b"], ["ccc"], ["aa"], ["aa"]]
    assert np.array_equal(again[[2, 0]], first[:2]) and first.dtype == np.float32
    assert [p.parent.parent.name for p in tmp_path.rglob("shard-*.json")] == ["toy"]
    with shared_features():
        FeatureCache(None).get_or_compute("toy", "v1", ["aa"], compute)
    assert compute.calls[-1] == ["aa"]


def test_cache_rejects_changed_width_and_corrupt_shard(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    cache.get_or_compute("toy", "v1", ["a"], Counter())
    with pytest.raises(AesError, match="5 columns but the cache holds 3"):
        cache.get_or_compute("toy", "v1", ["b"], lambda texts: np.zeros((len(texts), 5)))
    shard = next(tmp_path.rglob("shard-*.npy"))
    shard.write_bytes(b"not an array")
    with pytest.raises(AesError, match="damaged feature cache shard") as caught:
        FeatureCache(tmp_path).get_or_compute("toy", "v1", ["a"], Counter())
    assert caught.value.path == shard  # the damaged file itself, and what to do about it
    assert f"delete it and {shard.with_suffix('.json').name} beside it" in str(caught.value)
    shard.unlink()
    shard.with_suffix(".json").unlink()
    rows = FeatureCache(tmp_path).get_or_compute("toy", "v1", ["a"], Counter())
    assert rows.shape == (1, 3)  # the advice works: computed again


WRITER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from aes_ensemble.features.cache import FeatureCache

    def compute(texts):
        time.sleep(1.0)  # both writers read the empty cache before either writes
        return np.array([[len(t), sum(map(ord, t))] for t in texts])

    lo, hi = int(sys.argv[2]), int(sys.argv[3])
    texts = [f"essay number {i}" for i in range(lo, hi)]
    FeatureCache(sys.argv[1]).get_or_compute("toy", "v1", texts, compute)
    """
)


def test_two_writer_processes_lose_nothing(tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    cache_dir = tmp_path / "cache"
    procs = [
        subprocess.Popen([sys.executable, str(script), str(cache_dir), lo, hi], cwd=REPO)
        for lo, hi in [("0", "60"), ("40", "100")]
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    assert len(list(cache_dir.rglob("shard-*.json"))) == 2

    compute = Counter()
    texts = [f"essay number {i}" for i in range(100)]
    rows = FeatureCache(cache_dir).get_or_compute("toy", "v1", texts, compute)
    assert compute.calls == []
    np.testing.assert_array_equal(rows[:, 0], [len(t) for t in texts])
    np.testing.assert_array_equal(rows[:, 1], [sum(map(ord, t)) for t in texts])


# --- TF-IDF ------------------------------------------------------------------------------------


def test_tfidf_save_load_round_trip(tmp_path: Path, ellipse: Essays) -> None:
    texts = ellipse.texts[:200]
    fitted = TfidfFeatures(TfidfConfig(max_features=5000)).fit(texts[:150])
    x = fitted.transform(texts[150:])
    assert isinstance(x, sp.csr_matrix) and x.dtype == np.float32
    assert x.shape == (50, len(fitted.feature_names()))
    names = fitted.feature_names()
    assert names[0].startswith("word:") and names[-1].startswith("char:")
    fitted.save(tmp_path)
    assert {p.suffix for p in tmp_path.iterdir()} == {".json", ".npy"}
    loaded = TfidfFeatures.load(tmp_path)
    y = loaded.transform(texts[150:])
    assert (x != y).nnz == 0
    assert loaded.feature_names() == names


def _shipped_tfidf_configs() -> dict[str, TfidfConfig]:
    """The TF-IDF section of each learner config the package ships, by config name."""
    out = {}
    for path in sorted((REPO / "aes_ensemble" / "configs").glob("*.yaml")):
        section = read_yaml(path).get("features") or {}
        if section.get("tfidf") is not None:
            out[path.stem] = TfidfConfig.model_validate(section["tfidf"])
    return out


def test_the_package_ships_tfidf_configs() -> None:
    assert {"ridge_tfidf", "lgbm", "xgb"} <= set(_shipped_tfidf_configs())


@pytest.mark.parametrize(
    "config",
    [
        *_shipped_tfidf_configs().values(),
        TfidfConfig(min_df=1, max_features=300, lowercase=False, sublinear_tf=False),
    ],
    ids=[*_shipped_tfidf_configs(), "small-cased-linear"],
)
def test_shared_tfidf_equals_each_fitted_vectorizer(config: TfidfConfig) -> None:
    """Three folds' vectorizers (different vocabularies and idf) inside one shared block give
    exactly their own ``transform``, while each text is analysed once per analyzer setting."""
    train = pl.read_csv(sample_path(TRAIN), infer_schema=False)["full_text"].to_list()
    test = pl.read_csv(sample_path(TEST), infer_schema=False)["full_text"].to_list()
    texts = [*test, "", "  Ünïcode\tTABS\r\n\n  ΣΑΣ, don't stop-words   ", test[0], "a"]
    folds = [TfidfFeatures(config).fit(train[k::3]) for k in range(3)]
    with shared_features() as scope:
        for fitted in folds:
            for v in fitted.vectorizers.values():
                expected = sp.csr_matrix(v.transform(texts))
                got = shared_transform(v, texts, scope)
                assert got.dtype == expected.dtype == np.float32
                assert got.shape == expected.shape
                np.testing.assert_array_equal(got.indptr, expected.indptr)
                np.testing.assert_array_equal(got.indices, expected.indices)
                np.testing.assert_allclose(got.data, expected.data, rtol=0, atol=1e-12)
            shared = fitted.transform(texts[::-1])  # the block's own path, other row order
            assert (
                abs(
                    shared
                    - sp.csr_matrix(
                        sp.hstack([v.transform(texts[::-1]) for v in fitted.vectorizers.values()])
                    )
                ).max()
                <= 1e-12
            )
    assert len(scope.ngrams) == len(config.ranges())  # one count per analyzer, not per fold
    assert all(len(counts) == len(set(texts)) for counts in scope.ngrams.values())


def test_tfidf_config_is_validated() -> None:
    with pytest.raises(AesError, match="word_ngram_range"):
        validate(TfidfConfig, {"word_ngram_range": [1, 2, 3]})
    with pytest.raises(AesError, match="low <= high"):
        validate(TfidfConfig, {"char_ngram_range": [5, 3]})
    with pytest.raises(AesError, match="did you mean 'min_df'"):
        validate(TfidfConfig, {"min_dff": 3})
    one_block = validate(TfidfConfig, {"char_ngram_range": None, "min_df": 1})
    names = TfidfFeatures(one_block).fit(["a cat", "a dog"]).feature_names()
    assert names == ["word:cat", "word:dog"]  # one-letter tokens are not words to sklearn


# --- embeddings --------------------------------------------------------------------------------


def test_chunking_splits_long_essays_only() -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("all-MiniLM-L6-v2"))
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    long_text = " ".join(f"word{i % 50} is here." for i in range(500))  # 2,000 words
    short_text = "A short essay about school."
    long_chunks, short_chunks = chunk_token_ids(tokenizer, [long_text, short_text], 256)
    assert len(short_chunks) == 1
    assert len(long_chunks) > 1
    assert all(len(c) <= 256 and c[0] == cls_id and c[-1] == sep_id for c in long_chunks)
    ids = tokenizer(long_text, add_special_tokens=False)["input_ids"]
    assert long_chunks[0][1:-1] == ids[:254]
    assert long_chunks[-1][-2] == ids[-1]  # the windows reach the end of the essay
    assert sum(len(c) - 2 for c in long_chunks) > len(ids)  # they overlap
    (truncated,) = chunk_token_ids(tokenizer, [long_text], 256, chunking=False)
    assert truncated == [long_chunks[0]]


@pytest.mark.slow  # loads torch and MiniLM: over 10 s on 2 shared cores
def test_embeddings_real_minilm(tmp_path: Path, short_essays: Essays) -> None:
    config = EmbeddingConfig()
    texts = short_essays.texts
    plain = embed_texts(texts, config, cache=None, progress=False)
    assert plain.shape == (20, 384) and plain.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(plain, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(embed_texts(texts, config, progress=False), plain)  # deterministic
    reference = load_model(config.model, "cpu").encode(texts[:4], convert_to_numpy=True)
    np.testing.assert_allclose(plain[:4], reference, atol=1e-5)

    cache = FeatureCache(tmp_path)
    first = embed_texts(texts, config, cache, progress=False)
    assert np.array_equal(first, plain)
    start = time.perf_counter()
    second = embed_texts(texts, config, FeatureCache(tmp_path), progress=False)
    assert time.perf_counter() - start < 1.0
    assert np.array_equal(second, first)
    assert len(list(tmp_path.rglob("shard-*.npy"))) == 1


def test_chunked_embedding_sees_the_end_of_a_long_essay(short_essays: Essays) -> None:
    head = " ".join(["The school cafeteria should serve healthier lunches every day."] * 40)
    tail = short_essays.texts[0]
    long_text = f"{head}\n\n{tail}"
    chunked, tail_emb = embed_texts([long_text, tail], EmbeddingConfig(), progress=False)
    truncated = embed_texts([long_text], EmbeddingConfig(chunking=False), progress=False)[0]
    assert float(chunked @ tail_emb) > float(truncated @ tail_emb) + 0.05
    assert abs(float(np.linalg.norm(chunked)) - 1.0) < 1e-5


def test_embedding_cache_key_tracks_what_changes_vectors() -> None:
    base = EmbeddingConfig()
    assert base.cache_key() == EmbeddingConfig(device="cuda", batch_size=8).cache_key()
    assert (
        base.cache_key()
        == EmbeddingConfig(model="sentence-transformers/all-MiniLM-L6-v2").cache_key()
    )
    for other in [{"normalize": False}, {"chunking": False}, {"max_seq_length": 128}]:
        assert EmbeddingConfig(**other).cache_key() != base.cache_key()


# --- pipeline ----------------------------------------------------------------------------------


def test_pipeline_tfidf_fits_on_train_rows_only(tmp_path: Path, ellipse: Essays) -> None:
    train, valid = ellipse.take(np.arange(120)), ellipse.take(np.arange(120, 160))
    config = FeatureConfig(tfidf=TfidfConfig(char_ngram_range=None, min_df=1))
    pipe = FeaturePipeline(config, tmp_path / "cache", seed=0).fit(train)
    x_valid = pipe.transform(valid)
    assert isinstance(x_valid, sp.csr_matrix) and x_valid.dtype == np.float32
    names = pipe.feature_names()
    assert x_valid.shape == (40, len(names))
    train_words = {w for t in train.texts for w in re.findall(r"\w+", t.lower())}
    valid_only = {w for t in valid.texts for w in re.findall(r"\w+", t.lower())} - train_words
    assert valid_only
    vocab = {n.removeprefix("tfidf.word:") for n in names if n.startswith("tfidf.")}
    assert not (valid_only & vocab)
    assert vocab == {
        n.removeprefix("word:")
        for n in TfidfFeatures(config.tfidf).fit(train.texts).feature_names()
    }
    hc = pipe.transform(train)[:, -len(feature_names()) :].toarray()
    np.testing.assert_allclose(hc.mean(axis=0), 0, atol=1e-4)  # standardised on train rows


def test_pipeline_svd_is_dense_seeded_and_round_trips(tmp_path: Path, ellipse: Essays) -> None:
    train, test = ellipse.take(np.arange(100)), ellipse.take(np.arange(100, 130))
    config = FeatureConfig(tfidf=TfidfConfig(max_features=3000), svd_components=16)
    pipe = FeaturePipeline(config, tmp_path / "cache", seed=7).fit(train)
    x = pipe.transform(test)
    assert isinstance(x, np.ndarray) and x.dtype == np.float32
    assert x.shape == (30, len(feature_names()) + 16) == (30, len(pipe.feature_names()))
    assert pipe.feature_names()[-1] == "svd.15"
    again = FeaturePipeline(config, tmp_path / "cache", seed=7).fit(train).transform(test)
    assert np.array_equal(x, again)

    pipe.save(tmp_path / "model")
    saved = {p.suffix for p in (tmp_path / "model").rglob("*") if p.is_file()}
    assert saved == {".json", ".npy"}
    loaded = FeaturePipeline.load(tmp_path / "model", tmp_path / "cache")
    assert np.array_equal(loaded.transform(test), x)
    assert loaded.feature_names() == pipe.feature_names()
    shards = len(list((tmp_path / "cache").rglob("shard-*.npy")))
    FeaturePipeline.load(tmp_path / "model", tmp_path / "cache").transform(train)
    assert len(list((tmp_path / "cache").rglob("shard-*.npy"))) == shards  # all cached


def test_pipeline_with_embeddings(tmp_path: Path, short_essays: Essays) -> None:
    config = FeatureConfig(embeddings=EmbeddingConfig(), scale=False)
    pipe = FeaturePipeline(config, tmp_path, seed=0, progress=False).fit(
        short_essays.take(range(15))
    )
    x = pipe.transform(short_essays.take(range(15, 20)))
    names = pipe.feature_names()
    assert x.shape == (5, len(feature_names()) + 384) == (5, len(names))
    assert names[-1] == "emb.383"
    np.testing.assert_allclose(np.linalg.norm(x[:, -384:], axis=1), 1.0, atol=1e-5)


def test_feature_config_is_validated() -> None:
    with pytest.raises(AesError, match="svd_components needs a tfidf"):
        validate(FeatureConfig, {"svd_components": 8})
    with pytest.raises(AesError, match="no features"):
        validate(FeatureConfig, {"handcrafted": False})
    with pytest.raises(AesError, match="did you mean 'batch_size'"):
        validate(FeatureConfig, {"embeddings": {"batch_sise": 8}})
    with pytest.raises(RuntimeError, match="not fitted"):
        FeaturePipeline(FeatureConfig(), None, seed=0).feature_names()


def test_svd_components_do_not_depend_on_the_blas_threads() -> None:
    """One process uses every core, a ``--jobs`` worker a share: the SVD must fit the same
    components either way (the BLAS thread count changed them by ~1e-9, then the trees by 0.6)."""
    from threadpoolctl import threadpool_limits

    matrix = sp.random(6000, 8000, density=0.01, format="csr", random_state=1, dtype=np.float64)
    config = FeatureConfig(tfidf=TfidfConfig(), svd_components=32)
    fitted = []
    for threads in (2, 1):
        pipe = FeaturePipeline(config, None, seed=42, progress=False)
        with threadpool_limits(limits=threads):
            pipe._fit_svd(matrix, 32)
        fitted.append(pipe.svd_components)
    assert np.array_equal(fitted[0], fitted[1])
