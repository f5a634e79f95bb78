"""The linear probe (vqaudio.analysis.probe): converged by a stated criterion, checked from outside."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy.optimize import brentq

from vqaudio.analysis.probe import ConvergenceWarning, fit_logistic_regression


def _gradient(x: np.ndarray, y: np.ndarray, weights: np.ndarray, bias: np.ndarray, l2: float) -> np.ndarray:
    """The objective's gradient ``[D * C + C]`` by torch's autograd: mean cross-entropy + l2 / 2 ||W||^2."""
    w = torch.tensor(weights, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(bias, dtype=torch.float64, requires_grad=True)
    logits = torch.from_numpy(x) @ w + b
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y)) + 0.5 * l2 * (w**2).sum()
    loss.backward()
    assert w.grad is not None and b.grad is not None
    return np.concatenate([w.grad.numpy().ravel(), b.grad.numpy()])


def _blobs(seed: int, classes: int = 3, per_class: int = 20, dims: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 4.0, (classes, dims))
    y = np.repeat(np.arange(classes), per_class)
    return centres[y] + rng.normal(0.0, 0.3, (y.size, dims)), y


def test_separable_blobs_are_all_right_and_the_fit_converged() -> None:
    x, y = _blobs(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        probe = fit_logistic_regression(x, y, l2=1e-3)
    assert probe.converged and probe.gradient_norm <= 1e-6
    assert probe.weights.shape == (4, 3) and probe.bias.shape == (3,) and probe.classes.tolist() == [0, 1, 2]
    assert np.array_equal(probe.predict(x), y)
    x_test, y_test = _blobs(0, per_class=7)  # the same centres, new points
    assert np.mean(probe.predict(x_test) == y_test) == 1.0


@pytest.mark.parametrize("l2", [1e-3, 1e-1])
def test_gradient_at_the_returned_weights_is_below_tolerance(l2: float) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 5))
    y = rng.integers(0, 4, 60)  # not separable: labels unrelated to the features
    probe = fit_logistic_regression(x, y, l2=l2, gtol=1e-7)
    grad = _gradient(x, y, probe.weights, probe.bias, l2)
    assert np.abs(grad).max() <= 1e-7
    assert probe.gradient_norm == pytest.approx(np.abs(grad).max(), abs=1e-12)


def test_two_symmetric_classes_give_zero_bias_and_the_closed_form_weight() -> None:
    # x = +1 labelled 1 and x = -1 labelled 0, three of each. With w_0 = -w_1 = -w / 2 the objective is
    # log(1 + exp(-w)) + l2 / 2 * w^2 / 2, stationary where sigmoid(-w) = l2 * w / 2.
    x = np.array([[1.0], [-1.0]] * 3)
    y = np.array([1, 0] * 3)
    l2 = 0.1
    w = brentq(lambda v: 1.0 / (1.0 + math.exp(v)) - l2 * v / 2, 0.0, 100.0, xtol=1e-14)
    probe = fit_logistic_regression(x, y, l2=l2, gtol=1e-10)
    assert probe.bias == pytest.approx([0.0, 0.0], abs=1e-9)
    assert probe.weights[0] == pytest.approx([-w / 2, w / 2], abs=1e-9)
    assert probe.predict(np.array([[0.5], [-2.0]])).tolist() == [1, 0]


def test_constant_features_learn_the_class_prior() -> None:
    y = np.array(["b"] * 6 + ["a"] * 3 + ["c"])  # labels of any sortable kind
    probe = fit_logistic_regression(np.zeros((10, 0)), y)
    assert probe.classes.tolist() == ["a", "b", "c"]
    prior = np.log([0.3, 0.6, 0.1])
    assert probe.bias - probe.bias.mean() == pytest.approx(prior - prior.mean(), abs=1e-5)
    assert probe.predict(np.zeros((2, 0))).tolist() == ["b", "b"]


def test_stopping_early_warns_and_says_so() -> None:
    x, y = _blobs(2)
    with pytest.warns(ConvergenceWarning, match="after 1 iterations"):
        probe = fit_logistic_regression(x, y, max_iter=1)
    assert not probe.converged and probe.gradient_norm > 1e-6 and probe.iterations == 1
    with pytest.raises(ValueError, match="l2 > 0"):
        fit_logistic_regression(x, y, l2=0.0)
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        fit_logistic_regression(x[0], y)
