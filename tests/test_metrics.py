"""minbert.metrics against hand-computed values and the formulas written out here."""
import pytest

from minbert import metrics as M


def test_metrics_against_hand_values():
    assert M.accuracy([1, 2, 3, 4], [1, 2, 0, 0]) == 0.5
    # deviations (-1.5, -.5, .5, 1.5) and (-1.5, .5, -.5, 1.5): r = 4 / sqrt(5 * 5) = 0.8
    assert M.pearson([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert M.pearson([3, 2, 1], [1, 2, 3]) == pytest.approx(-1.0)
    assert M.pearson([2, 2, 2], [1, 2, 3]) == 0.0  # undefined for a constant: reported as 0
    assert M.metric("sts", [0, 1], [0, 2]) == pytest.approx(1.0)
    assert M.metric("quora", [0, 1, 1], [0, 1, 0]) == pytest.approx(2 / 3)


def test_summaries_against_the_formulas():
    # the seed report's row 2: (0.499 + 0.650 + 0.351) / 3 = 0.500 (its "Average" column)
    assert M.simple_mean(0.499, 0.650, 0.351) == pytest.approx(0.5)
    # CS224N: (SST + Quora + (STS + 1) / 2) / 3 by hand: (0.5 + 0.7 + 0.9) / 3 = 0.7
    assert M.overall(0.5, 0.7, 0.8) == pytest.approx(0.7)


def test_epoch_scores_of_batches():
    import torch
    s = M.EpochScores(["sst", "sts"])
    s.add("sst", 1.0, torch.tensor([1, 2]), torch.tensor([1, 0]))
    s.add("sst", 3.0, torch.tensor([4]), torch.tensor([4]))
    s.add("sts", 0.5, torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 3.0, 2.0]))
    out = s.summary()
    assert out["sst"] == {"loss": 2.0, "acc": pytest.approx(2 / 3), "batches": 2}
    assert out["sts"]["pearson"] == pytest.approx(0.5)  # deviations (-1,0,1), (-1,1,0): 1/2
