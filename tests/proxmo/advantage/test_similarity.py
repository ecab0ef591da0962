"""The backends give scikit-learn's TF-IDF (fitted on every row) while working on distinct texts only."""

import numpy as np
import pytest
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

from proxmo.advantage import AdvantageConfig, EmbeddingBackend, SIMILARITY_BACKENDS, StepBatch, compute_advantages, register_similarity_backend
from proxmo.advantage.similarity import TfidfBackend, term_counts
from proxmo.advantage.synthetic import alfworld_like_batch

TRICKY = [
    "You arrive at cabinet 1. On the cabinet 1, you see a mug 2, and a ApPle 10.",
    "snake_case words_and-dashes; x y z 7 42",
    "Café crème, naïve façade — ÜBER straße n°2",
    "",
    "...!!!",
    "tabs\tand\nnewlines\r\nmixed 3d 1st",
    "Nothing happens.",
    "Nothing happens.",
    "İstanbul ǅ ligatures ﬁ",
]


@pytest.mark.parametrize("single", [False, True])
def test_tokens_match_scikit_learn(single):
    pattern = r"(?u)\b\w+\b" if single else r"(?u)\b\w\w+\b"
    expected = CountVectorizer(token_pattern=pattern).fit(TRICKY)
    counts, vocabulary = term_counts(TRICKY, keep_single_char_tokens=single, names=True)
    assert vocabulary == expected.get_feature_names_out().tolist()
    np.testing.assert_array_equal(counts.toarray(), expected.transform(TRICKY).toarray())


def test_tokens_survive_a_nul_inside_a_text():
    texts = ["a\x00b cd", "ef gh"]
    counts, vocabulary = term_counts(texts, keep_single_char_tokens=True, names=True)
    expected = CountVectorizer(token_pattern=r"(?u)\b\w+\b").fit(texts)
    assert vocabulary == expected.get_feature_names_out().tolist()
    np.testing.assert_array_equal(counts.toarray(), expected.transform(texts).toarray())


@pytest.mark.parametrize("max_features", [None, 1024, 40, 5, 1])
def test_distinct_texts_with_counts_equal_fitting_on_every_row(max_features):
    batch = alfworld_like_batch(n_groups=6, seed=4)
    rows = batch.anchor.tolist()
    distinct, counts = np.unique(np.asarray(rows, dtype=object), return_counts=True)
    config = AdvantageConfig(max_features=max_features)
    ours = TfidfBackend().vectorize(distinct.tolist(), counts, len(rows), config).toarray()
    sklearn = TfidfVectorizer(max_features=max_features).fit(rows)
    expected = sklearn.transform(distinct.tolist()).toarray()
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, atol=1e-12)


def test_embedding_backend_plugs_in():
    calls = []

    def encode(texts):
        calls.append(len(texts))
        # a toy embedding: letter frequencies
        return np.array([[t.lower().count(c) for c in "abcdefghijklmnopqrstuvwxyz"] for t in texts], dtype=float)

    register_similarity_backend("letters", EmbeddingBackend(encode))
    try:
        batch = alfworld_like_batch(n_groups=3, seed=1)
        result = compute_advantages(batch, AdvantageConfig(similarity_backend="letters"))
        assert calls == [len(batch.prepared.anchors)]  # one call, distinct texts only
        assert np.isfinite(result.advantages).all()
        assert result.diagnostics["step_group_size_mean"] > 1.0
    finally:
        del SIMILARITY_BACKENDS["letters"]


def test_backend_must_have_vectorize():
    with pytest.raises(TypeError, match="vectorize"):
        register_similarity_backend("broken", object())


def test_all_empty_anchors_give_uniform_weights():
    batch = StepBatch(group=[0, 0, 0], traj=[0, 1, 2], t=[0, 0, 0], reward=[10.0, 0.0, 0.0],
                      invalid=[False] * 3, won=[True, False, False], anchor=["", "!", "?"])
    result = compute_advantages(batch, AdvantageConfig(modulation=False, gamma=1.0))
    np.testing.assert_allclose(result.step, [10 - 10 / 3, -10 / 3, -10 / 3], atol=1e-5)


def test_a_taken_backend_name_is_refused():
    before = SIMILARITY_BACKENDS["tfidf"]
    with pytest.raises(ValueError, match="tfidf"):
        register_similarity_backend("tfidf", EmbeddingBackend(lambda texts: np.ones((len(texts), 2))))
    assert SIMILARITY_BACKENDS["tfidf"] is before
