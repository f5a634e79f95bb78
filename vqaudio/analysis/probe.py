"""A linear probe: L2-regularised multinomial logistic regression, minimised to a stated tolerance.

The objective over ``N`` examples ``x_i`` ``[D]`` with labels ``y_i`` among ``C`` classes is the mean
cross-entropy of ``softmax(x_i W + b)`` plus ``l2 / 2 * ||W||^2`` (the bias ``b`` is not regularised),
in float64. It is smooth and, in ``W``, strictly convex, so "converged" has a meaning: the largest
absolute entry of its gradient is at most ``gtol``. L-BFGS-B (Byrd, Lu, Nocedal and Zhu, 1995, "A Limited
Memory Algorithm for Bound Constrained Optimization", through :func:`scipy.optimize.minimize`) is run with
that gradient test alone (``ftol=0``: no stop on a small decrease of the loss); a fit that ends any
other way (``max_iter`` reached, a failed line search) emits a :class:`ConvergenceWarning` and says so
in :attr:`LogisticRegression.converged`. numpy and scipy only.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

__all__ = ["ConvergenceWarning", "LogisticRegression", "fit_logistic_regression"]


class ConvergenceWarning(UserWarning):
    """A fit stopped before its gradient reached the tolerance (scikit-learn's name, not its class)."""


@dataclass(frozen=True)
class LogisticRegression:
    """A fitted probe: ``weights`` ``[D, C]``, ``bias`` ``[C]`` (float64), ``classes`` ``[C]`` (the sorted
    distinct training labels; column ``c`` scores ``classes[c]``), the final gradient's largest absolute
    entry ``gradient_norm``, the ``iterations`` L-BFGS-B ran and whether it ``converged``
    (``gradient_norm <= gtol``)."""

    weights: np.ndarray
    bias: np.ndarray
    classes: np.ndarray
    gradient_norm: float
    iterations: int
    converged: bool

    def logits(self, x: np.ndarray) -> np.ndarray:
        """``x W + b`` ``[M, C]`` for features ``x`` ``[M, D]``."""
        return np.asarray(x, dtype=np.float64) @ self.weights + self.bias

    def predict(self, x: np.ndarray) -> np.ndarray:
        """The most probable class label ``[M]`` of each row of ``x`` ``[M, D]`` (ties: the first class)."""
        return self.classes[np.argmax(self.logits(x), axis=1)]


def _loss_and_gradient(
    params: np.ndarray, x: np.ndarray, onehot: np.ndarray, l2: float
) -> tuple[float, np.ndarray]:
    """The objective and its gradient at ``params`` (``W`` ``[D, C]`` then ``b`` ``[C]``, flattened)."""
    d, c = x.shape[1], onehot.shape[1]
    w, b = params[: d * c].reshape(d, c), params[d * c :]
    logits = x @ w + b
    logits -= logits.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(logits).sum(axis=1, keepdims=True))
    log_prob = logits - log_norm
    n = x.shape[0]
    loss = -float((onehot * log_prob).sum()) / n + 0.5 * l2 * float((w * w).sum())
    residual = (np.exp(log_prob) - onehot) / n
    grad_w = x.T @ residual + l2 * w
    return loss, np.concatenate([grad_w.ravel(), residual.sum(axis=0)])


def fit_logistic_regression(
    x: np.ndarray,
    y: np.ndarray,
    *,
    l2: float = 1e-3,
    gtol: float = 1e-6,
    max_iter: int = 1000,
) -> LogisticRegression:
    """Fit L2-regularised multinomial logistic regression (see the module docstring) from zero.

    Args:
        x: features ``[N, D]`` (cast to float64; standardise them first for a well-conditioned problem).
        y: labels ``[N]`` (any sortable values); their distinct values are the classes.
        l2: weight of ``l2 / 2 * ||W||^2``; must be > 0 (it makes the optimum unique and finite, even
            for separable data).
        gtol: the convergence tolerance on the largest absolute entry of the gradient.
        max_iter: the most L-BFGS-B iterations.

    Warns:
        ConvergenceWarning: the gradient did not reach ``gtol``; the weights reached are returned.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    if x.ndim != 2 or y.shape != (x.shape[0],) or not x.shape[0]:
        raise ValueError(f"x must be [N, D] and y [N] with N >= 1, got {x.shape} and {y.shape}")
    if not l2 > 0 or not gtol > 0 or max_iter < 1:
        raise ValueError(f"need l2 > 0, gtol > 0 and max_iter >= 1, got {l2}, {gtol} and {max_iter}")
    classes, index = np.unique(y, return_inverse=True)
    d, c = x.shape[1], classes.size
    onehot = np.zeros((x.shape[0], c))
    onehot[np.arange(x.shape[0]), index] = 1.0
    res = minimize(
        _loss_and_gradient,
        np.zeros(d * c + c),
        args=(x, onehot, l2),
        method="L-BFGS-B",
        jac=True,
        options={"gtol": gtol, "ftol": 0.0, "maxiter": max_iter},
    )
    params = np.asarray(res.x, dtype=np.float64)
    grad_norm = float(np.abs(_loss_and_gradient(params, x, onehot, l2)[1]).max())
    converged = grad_norm <= gtol
    if not converged:
        warnings.warn(
            f"logistic regression stopped after {res.nit} iterations with gradient {grad_norm:.2g} > "
            f"gtol {gtol:g} ({res.message}); raise max_iter or l2",
            ConvergenceWarning,
            stacklevel=2,
        )
    weights, bias = params[: d * c].reshape(d, c), params[d * c :]
    return LogisticRegression(weights, bias, classes, grad_norm, int(res.nit), converged)
