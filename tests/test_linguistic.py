"""Linguistic features: each family on small hand-checked texts, the library equivalences
(textstat, lexicalrichness, wordfreq), the fitted prompt similarity and the pipeline wiring.
The embedded ELLIPSE sample gives real essays, so everything runs in a user's clone."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import textstat
import wordfreq
from lexicalrichness import LexicalRichness

from aes_ensemble.config import config_hash, validate
from aes_ensemble.data import Essays, read_essays
from aes_ensemble.errors import AesError
from aes_ensemble.features.diversity import hdd, tokens
from aes_ensemble.features.linguistic import (
    LinguisticConfig,
    all_names,
    cohesion,
    feature_names,
    lexical,
    linguistic_matrix,
    parse,
    readability,
    spelling,
)
from aes_ensemble.features.pipeline import FeatureConfig, FeaturePipeline
from aes_ensemble.features.prompt_similarity import PromptSimilarity, vectors
from aes_ensemble.features.readability import readability as textstat_indices
from aes_ensemble.sample import TRAIN, sample_path


@pytest.fixture(scope="module")
def sample() -> Essays:
    return read_essays(sample_path(TRAIN), data_format="ellipse")


# --- spelling ----------------------------------------------------------------------------------


def test_spelling_counts_words_missing_from_the_dictionary() -> None:
    # teh (twice: a transposition of "the") and xqzvw (nothing one edit away) are misspelled;
    # @CAPS1 is ASAP's anonymisation, not a word; "don't" is in the dictionary.
    row = spelling(parse("Teh cat sat on teh mat, @CAPS1 said. I don't xqzvw."))
    assert row["misspelled_count"] == 3
    assert row["misspelled_rate"] == pytest.approx(3 / 10)  # teh cat sat on teh mat said i...
    assert row["misspelled_type_rate"] == pytest.approx(2 / 9)  # teh, xqzvw of 9 types
    assert row["misspelled_near_share"] == pytest.approx(2 / 3)  # teh, teh; not xqzvw
    assert spelling(parse("The cat sat."))["misspelled_count"] == 0
    # a capitalised word inside a sentence is a name; a possessive is its word
    assert spelling(parse("Yesterday Saeng saw the children's dog."))["misspelled_count"] == 0
    assert spelling(parse("Saeng saw it."))["misspelled_count"] == 1  # sentence-initial: checked


# --- lexical -----------------------------------------------------------------------------------


def test_lexical_zipf_profile_matches_wordfreq_and_rare_share() -> None:
    words = ["the", "cat", "meandered"]  # xqzvw: not in wordfreq, so not in the profile
    row = lexical(parse("The cat meandered xqzvw."))
    zipf = [wordfreq.zipf_frequency(w, "en") for w in words]  # rounded to 0.01 by wordfreq
    assert row["zipf_mean"] == pytest.approx(np.mean(zipf), abs=0.006)
    assert row["zipf_p50"] == pytest.approx(np.median(zipf), abs=0.006)
    assert row["rare_share"] == pytest.approx(1 / 3)  # only "meandered" is below Zipf 3
    assert row["content_zipf_mean"] == pytest.approx(np.mean(zipf[1:]), abs=0.006)


def test_hdd_and_mtld_are_lexicalrichness_values(sample: Essays) -> None:
    for text in [*sample.texts[:25], "Well-known 3 cats: cats, cats; cats!", "x"]:
        rich = LexicalRichness(text)
        assert tokens(text) == rich.wordlist
        row = lexical(parse(text))
        draws = min(42, rich.words)  # lexicalrichness refuses fewer tokens than draws
        assert row["hdd"] == pytest.approx(rich.hdd(draws), abs=1e-9)  # log-gamma form
        assert row["mtld"] == rich.mtld()
    short = "one two two three"  # shorter than 42 draws: all tokens are drawn, HD-D = TTR
    assert hdd(short.split()) == pytest.approx(3 / 4)
    assert hdd([]) == 0.0


# --- readability -------------------------------------------------------------------------------


def test_readability_indices_equal_textstat(sample: Essays) -> None:
    texts = [*sample.texts[:40], "", "Hi.", "One two", "A cat! Dogs?? ... yes", "it's don't -- ok"]
    for text in texts:
        ours = textstat_indices(text)
        for field in dataclasses.fields(ours):
            if field.name == "difficult_tokens":
                expected = textstat.difficult_words(text, unique=False)
            else:
                expected = getattr(textstat, field.name)(text)
            assert getattr(ours, field.name) == pytest.approx(expected, abs=1e-9), field.name


def test_readability_mechanics_and_syntax_rates() -> None:
    # One sentence ("home.the" has no space after the stop), ten words.
    row = readability(parse("i went home.the dog And The cat dont care!!"))
    assert row["missing_space_per_word"] == pytest.approx(1 / 10)
    assert row["repeated_punct_per_word"] == pytest.approx(1 / 10)
    assert row["midsentence_capital_per_word"] == pytest.approx(2 / 10)  # And, The
    assert row["missing_apostrophe_per_word"] == pytest.approx(1 / 10)  # dont
    assert row["no_final_punct"] == 0.0
    assert row["first_person_per_word"] == pytest.approx(1 / 10)
    assert row["coordinators_per_sentence"] == pytest.approx(1.0)  # And
    assert row["single_paragraph"] == 1.0

    text = "A b c.\nThe ball was kicked by me because it was there. Go\n\nSee it"
    row = readability(parse(text))
    # sentences: 3, 10, 1 and 2 words (a line break ends one too)
    assert row["sentence_len_p50"] == pytest.approx(np.median([3, 10, 1, 2]))
    assert row["share_sentences_lt5"] == pytest.approx(3 / 4)
    assert row["passives_per_sentence"] == pytest.approx(1 / 4)  # was kicked
    assert row["subordinators_per_sentence"] == pytest.approx(1 / 4)  # because
    assert row["no_final_punct"] == 1.0
    assert row["paragraphs_per_100_words"] == pytest.approx(100 * 3 / 16)
    assert row["single_paragraph"] == 0.0


# --- cohesion ----------------------------------------------------------------------------------


def test_cohesion_connectives_and_adjacent_overlap() -> None:
    row = cohesion(parse("The car is red. The cars are fast. However, I like apples."))
    # content words: {car, red}, {car, fast}, {like, apple}; "cars" meets "car"
    assert row["adjacent_overlap_any"] == pytest.approx(1 / 2)
    assert row["adjacent_overlap_jaccard"] == pytest.approx((1 / 3 + 0) / 2)
    assert row["adversative_per_sentence"] == pytest.approx(1 / 3)
    assert row["connective_kinds_used"] == 1.0
    assert row["content_givenness"] == pytest.approx(1 / 6)  # "cars" repeats "car"
    row = cohesion(parse("First of all, we went out. In conclusion, it rained."))
    assert row["sequential_per_sentence"] == pytest.approx(1 / 2)  # one marker, not "first"
    assert row["summary_per_sentence"] == pytest.approx(1 / 2)
    assert row["connective_variety"] == 1.0


# --- prompt similarity -------------------------------------------------------------------------


def test_prompt_similarity_is_leave_one_out_and_handles_unseen_prompts(tmp_path: Path) -> None:
    train = [
        "Cars pollute the city air and cars cost money.",
        "Electric cars reduce air pollution in the city.",
        "The city should ban cars from its centre.",
        "Homework helps students practise mathematics.",
        "Students learn more with less homework.",
    ]
    prompts = np.array(["cars", "cars", "cars", "homework", "homework"], dtype=object)
    fitted = PromptSimilarity()
    columns = fitted.fit_transform(train, prompts)
    x = vectors(train).toarray()
    for i in range(3):
        others = x[[j for j in range(3) if j != i]].sum(axis=0)
        expected = x[i] @ others / np.linalg.norm(others)
        assert columns[i, 0] == pytest.approx(expected, abs=1e-12)
    sims = columns[:3, 0]
    np.testing.assert_allclose(columns[:3, 1], (sims - sims.mean()) / sims.std(), atol=1e-12)

    new = ["Cars in the city", "Phones distract students in class", "Phones are useful"]
    new_prompts = np.array(["cars", "phones", "phones"], dtype=object)
    out = fitted.transform(new, new_prompts)
    centroid = x[:3].sum(axis=0)
    expected = vectors(new[:1]).toarray()[0] @ centroid / np.linalg.norm(centroid)
    assert out[0, 0] == pytest.approx(expected, abs=1e-12)
    unseen = vectors(new[1:]).toarray()  # compared with each other: texts, never scores
    assert out[1, 0] == pytest.approx(unseen[0] @ unseen[1], abs=1e-12)
    assert fitted.transform(new[1:2], new_prompts[1:2])[0].tolist() == [
        pytest.approx(fitted.overall_mean),
        0.0,
    ]

    fitted.save(tmp_path / "sim")
    np.testing.assert_array_equal(
        PromptSimilarity.load(tmp_path / "sim").transform(new, new_prompts), out
    )


# --- config, cache and pipeline ----------------------------------------------------------------


def test_linguistic_config_is_strict() -> None:
    with pytest.raises(AesError, match="did you mean 'spelling'"):
        validate(FeatureConfig, {"linguistic": {"speling": False}})
    off = dict.fromkeys(
        ["spelling", "lexical", "readability", "cohesion", "prompt_similarity"], False
    )
    with pytest.raises(AesError, match="every family is off"):
        validate(FeatureConfig, {"linguistic": off})
    assert validate(FeatureConfig, {"handcrafted": False, "linguistic": {}}).linguistic
    assert FeatureConfig().model_dump(mode="json")["linguistic"] is None
    assert config_hash(FeatureConfig()) != config_hash(FeatureConfig(linguistic=LinguisticConfig()))


def test_families_switch_columns_and_share_one_cache(tmp_path: Path, sample: Essays) -> None:
    from aes_ensemble.features.cache import FeatureCache

    texts = sample.texts[:12]
    cache = FeatureCache(tmp_path)
    full = linguistic_matrix(texts, LinguisticConfig(), cache)
    assert full.shape == (12, len(all_names())) and np.isfinite(full).all()
    shards = sorted(tmp_path.rglob("shard-*.npy"))
    no_spelling = LinguisticConfig(spelling=False)
    part = linguistic_matrix(texts, no_spelling, FeatureCache(tmp_path))
    assert sorted(tmp_path.rglob("shard-*.npy")) == shards  # nothing recomputed
    names = feature_names(no_spelling)
    assert not any(n.startswith("spelling.") for n in names) and len(names) == part.shape[1]
    keep = [all_names().index(n) for n in names]
    np.testing.assert_array_equal(part, full[:, keep])


def test_pipeline_with_linguistic_features_round_trips(tmp_path: Path, sample: Essays) -> None:
    train, test = sample.take(np.arange(80)), sample.take(np.arange(80, 100))
    config = FeatureConfig(handcrafted=False, linguistic=LinguisticConfig())
    pipe = FeaturePipeline(config, tmp_path / "cache", seed=0, progress=False)
    x_train = pipe.fit_transform(train)
    names = pipe.feature_names()
    assert x_train.shape == (80, len(names)) == (80, len(all_names()) + 2)
    assert names[-2:] == ["ling.prompt.sim", "ling.prompt.sim_z"]
    np.testing.assert_allclose(np.asarray(x_train).mean(axis=0), 0, atol=1e-4)  # scaled
    x_test = pipe.transform(test)
    pipe.save(tmp_path / "model")
    loaded = FeaturePipeline.load(tmp_path / "model", tmp_path / "cache", progress=False)
    np.testing.assert_array_equal(loaded.transform(test), x_test)
    assert loaded.feature_names() == names
