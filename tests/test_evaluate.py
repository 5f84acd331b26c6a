import math

import pytest

from studio.chat import evaluate


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


def test_short_answer_data_is_scored_by_exact_match_and_f1_first():
    from studio.chat import evaluate

    assert evaluate.exact_match("Positive.", "positive") == 1.0 and evaluate.exact_match("positive", "negative") == 0
    assert evaluate.token_f1("the Eiffel Tower", "Eiffel Tower in Paris") == pytest.approx(2 * (2 / 4) * (2 / 3) / (2 / 4 + 2 / 3))
    assert evaluate.token_f1("北京", "北京市") == pytest.approx(0.8)  # per character for Chinese
    assert evaluate.short_answers(["positive", "negative", "neutral"])
    assert evaluate.short_answers(["The answer is yes, of course."] * 5 + ["The answer is no, sadly not."] * 5)
    assert not evaluate.short_answers([f"A long and different explanation number {i} of the idea." for i in range(9)])
    result = {"base": {"exact_match": 0.2, "f1": 0.3, "loss": 2.0, "perplexity": 7.4, "rouge_l": 0.1, "bleu": 0.05},
              "tuned": {"exact_match": 0.8, "f1": 0.9, "loss": 1.0, "perplexity": 2.7, "rouge_l": 0.5, "bleu": 0.3}}
    table = evaluate.evaluation_table(result)
    assert [str(row[0]) for row in table][:2] == ["accuracy (exact match)", "F1 (shared words)"]
    assert table[0][3] == 0.6 and len(table) == 6
    plain = {side: {k: v for k, v in scores.items() if k not in ("exact_match", "f1")} for side, scores in result.items()}
    assert [str(row[0]) for row in evaluate.evaluation_table(plain)] == ["answer loss", "perplexity", "ROUGE-L", "BLEU"]


def test_a_fixed_cost_is_never_negative():
    """Issue 57: noisy timings fitted a line that crossed below zero, shown as "+ -5770 ms"."""
    samples = [(10, 0.01), (50, 2.0), (100, 5.0), (200, 10.2)]
    k, b = evaluate.fit_latency(samples)
    assert b == 0.0 and 0.04 < k < 0.06
    assert "-" not in evaluate.latency_text(samples).split("+")[1]
