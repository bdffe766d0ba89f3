"""What the judge shows of a hidden test: the input may be shown, its expected value never is."""

from __future__ import annotations

from fixtures.judging import judge_answers

AID = "a01_kl_divergence"


def test_a_hidden_inputs_expected_value_is_not_shown():
    verdict = judge_answers(AID, "test_kl_divergence", kl_divergence=lambda p, q: 0.25)
    assert not verdict.passed and "kl_divergence([0.7, 0.2, 0.1], [0.5, 0.3, 0.2]) returned 0.25" in verdict.message
    assert "expected 0.0" in verdict.message  # a visible input fails first, with its value shown

    def right_on_visible_only(p, q):
        import numpy as np

        p, q = np.asarray(p), np.asarray(q)
        if p.shape[-1] == 4:  # the hidden inputs only
            return 0.25
        return np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0) / np.where(p > 0, q, 1.0)), 0.0), axis=-1)

    verdict = judge_answers(AID, "test_kl_divergence", kl_divergence=right_on_visible_only)
    assert not verdict.passed and "hidden test input (its expected value is not shown)" in verdict.message
    assert "0.456435" not in verdict.message
