"""A small Gaussian process for the model-guided strategies: numpy only, exact, refitted as results arrive.

Model: ``y(x) = m + f(x) + ε``, ``f ~ GP(0, σ_f² · exp(-½ Σ_k (x_k − x'_k)² / ℓ_k²))`` (squared exponential with
one length scale per input: automatic relevance determination), and a noise variance per observation
``σ_n² / s_i`` where ``s_i`` is the number of seeds behind observation i's mean. A mean over two seeds is
trusted twice as much as a single measurement: the model is noise-aware by construction.

Targets are standardised; the hyperparameters (log ℓ_k, log σ_f², log σ_n²) maximise the log marginal likelihood
by a few Adam steps from the previous fit (warm start), within bounds that keep the model sane with little
data. Fitting is O(n³) in the number of observations kept (capped by the caller); prediction O(n) per point.
Everything is deterministic: the same observations give the same fit and the same predictions.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.linalg import cho_solve, solve_triangular

__all__ = ["GaussianProcess", "expected_improvement"]

_LOG_LS = (math.log(0.05), math.log(20.0))
_LOG_SF2 = (math.log(0.05), math.log(20.0))
_LOG_SN2 = (math.log(1e-3), math.log(2.0))


class GaussianProcess:
    """Exact GP regression with an ARD squared-exponential kernel and per-point noise (see the module doc)."""

    def __init__(self, *, dim: int) -> None:
        self.dim = int(dim)
        # log length scales (inputs in [0, 1]), log signal variance, log noise variance (standardised units)
        self.theta = np.concatenate([np.full(self.dim, math.log(0.5)), [0.0, math.log(0.2)]])
        self._x = np.zeros((0, self.dim))
        self._alpha = np.zeros(0)
        self._chol: np.ndarray | None = None
        self._mean, self._scale = 0.0, 1.0

    @property
    def fitted(self) -> bool:
        return self._chol is not None

    @property
    def noise_sd(self) -> float:
        """The noise standard deviation of one measurement, in the targets' units."""
        return float(math.exp(0.5 * self.theta[-1]) * self._scale)

    def fit(self, x: np.ndarray, y: np.ndarray, seeds: np.ndarray | None = None, *, steps: int = 0,
            learning_rate: float = 0.08) -> None:
        """Condition on ``x`` (n × dim), ``y`` (n), ``seeds`` (n, default 1); first ``steps`` Adam steps on the
        hyperparameters (0: keep them)."""
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        w = 1.0 / np.maximum(np.asarray(seeds if seeds is not None else np.ones(len(y)), dtype=np.float64), 1.0)
        if len(y) == 0:
            self._chol = None
            return
        self._mean = float(y.mean())
        self._scale = float(y.std()) if len(y) > 1 and y.std() > 1e-9 else 1.0
        z = (y - self._mean) / self._scale
        if steps > 0 and len(y) >= 4:
            self._optimise(x, z, w, steps, learning_rate)
        k = self._kernel(x, x) + np.diag(np.exp(self.theta[-1]) * w) + 1e-8 * np.eye(len(y))
        self._chol = _cholesky(k)
        self._alpha = _solve(self._chol, z)
        self._x = x

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation of f (plus the mean m) at the rows of ``x``."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        if self._chol is None:
            return np.full(len(x), self._mean), np.full(len(x), self._scale)
        ks = self._kernel(x, self._x)
        mu = ks @ self._alpha
        v = solve_triangular(self._chol, ks.T, lower=True, check_finite=False)
        var = np.maximum(np.exp(self.theta[self.dim]) - np.sum(v * v, axis=0), 1e-12)
        return self._mean + self._scale * mu, self._scale * np.sqrt(var)

    # -- internals ---------------------------------------------------------------------------------------
    def _kernel(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ls = np.exp(self.theta[: self.dim])
        a_, b_ = a / ls, b / ls
        d2 = np.sum(a_ * a_, axis=1)[:, None] + np.sum(b_ * b_, axis=1)[None, :] - 2.0 * a_ @ b_.T
        return np.exp(self.theta[self.dim]) * np.exp(-0.5 * np.maximum(d2, 0.0))

    def _optimise(self, x: np.ndarray, z: np.ndarray, w: np.ndarray, steps: int, lr: float) -> None:
        """Adam on the negative log marginal likelihood, gradients in closed form:
        ∂(−log p)/∂θ_j = ½ tr((K⁻¹ − α αᵀ) ∂K/∂θ_j)."""
        n = len(z)
        m, v = np.zeros_like(self.theta), np.zeros_like(self.theta)
        low = np.concatenate([np.full(self.dim, _LOG_LS[0]), [_LOG_SF2[0], _LOG_SN2[0]]])
        high = np.concatenate([np.full(self.dim, _LOG_LS[1]), [_LOG_SF2[1], _LOG_SN2[1]]])
        for t in range(1, steps + 1):
            ls2 = np.exp(2.0 * self.theta[: self.dim])
            kf = self._kernel(x, x)
            noise = np.exp(self.theta[-1]) * w
            try:
                chol = _cholesky(kf + np.diag(noise) + 1e-8 * np.eye(n))
            except np.linalg.LinAlgError:
                break
            alpha = _solve(chol, z)
            inv = _solve(chol, np.eye(n))
            core = (inv - np.outer(alpha, alpha)) * kf  # ½ tr((K⁻¹ − ααᵀ) ∂K/∂θ), ∂K/∂log ℓ_k = K_f ∘ D_k / ℓ_k²
            # Σ_ij core_ij (x_ik − x_jk)² = 2 Σ_i x_ik² (core 1)_i − 2 x_kᵀ core x_k   (core is symmetric)
            spread = 2.0 * (core.sum(axis=1) @ (x * x)) - 2.0 * np.einsum("ik,ij,jk->k", x, core, x)
            grad = np.empty_like(self.theta)
            grad[: self.dim] = 0.5 * spread / ls2
            grad[self.dim] = 0.5 * np.sum(core)
            grad[-1] = 0.5 * np.sum(np.diag(inv - np.outer(alpha, alpha)) * noise)
            m = 0.9 * m + 0.1 * grad
            v = 0.999 * v + 0.001 * grad * grad
            step = lr * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
            self.theta = np.clip(self.theta - step, low, high)


def _cholesky(k: np.ndarray) -> np.ndarray:
    return np.linalg.cholesky(k)


def _solve(chol: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``K⁻¹ b`` from the lower Cholesky factor of K."""
    return cho_solve((chol, True), b, check_finite=False)


def expected_improvement(mu: np.ndarray, sd: np.ndarray, best: np.ndarray | float) -> np.ndarray:
    """E[max(f − best, 0)] for f ~ N(mu, sd²), elementwise (``best`` may differ per point)."""
    sd = np.maximum(sd, 1e-12)
    u = (mu - best) / sd
    pdf = np.exp(-0.5 * u * u) / math.sqrt(2.0 * math.pi)
    cdf = 0.5 * (1.0 + _erf(u / math.sqrt(2.0)))
    return sd * (u * cdf + pdf)


def _erf(x: np.ndarray) -> np.ndarray:
    """The error function, elementwise (Abramowitz–Stegun 7.1.26, |error| < 1.5e-7): numpy has none."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))
