import math

import pytest

from studio import evaluate


def test_units_are_words_for_english_and_characters_for_chinese():
    assert evaluate.units("The cat, 42 cats!") == ["the", "cat", "42", "cats"]
    assert evaluate.units("我是 Lumen。") == ["我", "是", "lumen"]


def test_rouge_l_matches_a_hand_count():
    # reference: the cat sat on the mat (6), candidate: the cat on mat (4); LCS = the cat on mat = 4
    p, r = 4 / 4, 4 / 6
    assert evaluate.rouge_l("the cat sat on the mat", "the cat on mat") == pytest.approx(2 * p * r / (p + r))
    assert evaluate.rouge_l("abc", "") == 0.0 and evaluate.rouge_l("same words", "same words") == 1.0
    # Chinese per character: 我是小助手 vs 我是助手 -> LCS 4, p = 1, r = 4/5
    assert evaluate.rouge_l("我是小助手", "我是助手") == pytest.approx(2 * 1 * 0.8 / 1.8)


def test_bleu_matches_a_hand_computation():
    assert evaluate.bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(100)
    # candidate "the cat sat" vs reference of 6 words: p1 = 3/3, p2 = (2+1)/(2+1), p3 = (1+1)/(1+1),
    # p4 = (0+1)/(0+1) with add-one smoothing; brevity penalty exp(1 - 6/3)
    assert evaluate.bleu(["the cat sat on the mat"], ["the cat sat"]) == pytest.approx(100 * math.exp(1 - 2))
    assert evaluate.bleu(["a b c d"], ["x y z w"]) == 0.0


def test_latency_fit_recovers_k_and_b_from_synthetic_timings():
    k, b = 0.035, 0.4
    samples = [(n, k * n + b + noise) for n, noise in ((10, 0.001), (40, -0.002), (80, 0.0015), (120, -0.001))]
    fit_k, fit_b = evaluate.fit_latency(samples)
    assert fit_k == pytest.approx(k, rel=0.02) and fit_b == pytest.approx(b, abs=0.01)
    assert "ms x tokens" in evaluate.latency_text(samples)
    assert evaluate.fit_latency([(10, 1.0), (10, 1.1)]) is None
