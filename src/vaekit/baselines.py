"""Linear baselines for auto-encoders: PCA and logistic PCA, with the scikit-learn estimator contract.

*PCA* (scikit-learn) reconstructs x as mean + codes @ components: the best linear code under
squared error.  *Logistic PCA* (Collins, Dasgupta & Schapire 2001; Schein, Saul & Ungar 2003)
keeps a linear map from codes to the *logits* of Bernoulli pixels,

    p(x_d = 1 | u) = sigmoid(bias_d + u . V_d),      u in R^k,

and fits codes U and basis V jointly by minimising the cross-entropy of the data (pixels in
[0, 1]).  A new image has no closed-form code: `transform` finds it by optimising the same
cross-entropy with V and the bias fixed (a convex problem per image).  A tiny L2 penalty on U
and V keeps the optimum finite for pixels that are exactly 0 or 1.

    >>> lpca = LogisticPCA(30).fit(x_train)          # x: (N, D) or (N, H, W) in [0, 1]
    >>> x_hat = lpca.inverse_transform(lpca.transform(x_test))
    >>> squared_error(x_test, x_hat)                 # summed over pixels, mean over images
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .data.core import check_array
from .errors import VaekitError


def squared_error(x, x_hat) -> float:
    """Hinton & Salakhutdinov's metric: squared error summed over pixels, averaged over images."""
    x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).float().reshape(len(x), -1)
    x_hat = torch.as_tensor(np.asarray(x_hat) if not isinstance(x_hat, torch.Tensor) else x_hat).float()
    x_hat = x_hat.reshape(len(x_hat), -1)
    if x.shape != x_hat.shape:
        raise VaekitError(f"squared_error: shapes differ, {tuple(x.shape)} vs {tuple(x_hat.shape)}")
    return float((x - x_hat).pow(2).sum(1).mean())


def _matrix(x, name: str) -> torch.Tensor:
    x = check_array(x, name)
    return x.reshape(len(x), -1)


class PCA:
    """scikit-learn PCA on flattened items; `reconstruct(x)` = inverse_transform(transform(x)).

    Float64 items are decomposed in float64, any others in float32.  svd_solver is scikit-learn's: "auto" (a
    randomized SVD on large data), or "full" (an exact SVD, which also keeps every singular value).
    Learned: components_ (k, D) orthonormal rows, mean_ (D,), singular_values_ of the centred items, descending
    (the k of the components; with svd_solver="full" all min(N, D) of them)."""

    def __init__(self, n_components: int, random_state: int = 0, svd_solver: str = "auto"):
        self.n_components = n_components
        self.random_state = random_state
        self.svd_solver = svd_solver

    def fit(self, x, y=None) -> PCA:
        from sklearn.decomposition import PCA as SkPCA

        x = _items(x, "PCA data")
        if not 1 <= self.n_components <= min(x.shape):
            raise VaekitError(f"PCA: n_components must be in [1, {min(x.shape)}], got {self.n_components}")
        self.shape_ = None
        full = self.svd_solver == "full"  # keep the whole spectrum: sklearn keeps only the components asked for
        self.pca_ = SkPCA(
            None if full else self.n_components, svd_solver=self.svd_solver, random_state=self.random_state
        ).fit(x)
        self.components_, self.mean_ = self.pca_.components_[: self.n_components], self.pca_.mean_
        self.singular_values_ = self.pca_.singular_values_
        return self

    def transform(self, x) -> np.ndarray:
        """Codes (N, k) = (x - mean_) @ components_.T."""
        return (_items(x, "PCA data") - self.mean_) @ self.components_.T

    def inverse_transform(self, codes) -> np.ndarray:
        """Items (N, D) = codes @ components_ + mean_."""
        return np.asarray(codes) @ self.components_ + self.mean_

    def reconstruct(self, x) -> np.ndarray:
        return self.inverse_transform(self.transform(x))


def _items(x, name: str) -> np.ndarray:
    """Items as an (N, D) array for PCA: float64 kept, anything else float32 (checked by `check_array`)."""
    wide = x.dtype in (np.float64, torch.float64) if isinstance(x, (np.ndarray, torch.Tensor)) else False
    m = _matrix(x, name).numpy()
    return np.asarray(x, dtype=np.float64).reshape(len(m), -1) if wide else m


class LogisticPCA:
    """Bernoulli likelihood with linear logits; codes of new data found by optimisation.

    Parameters: n_components (k), max_iter (L-BFGS iterations for fit and for each transform),
    l2 (penalty per entry of U and V, in nats per item), random_state.  Learned: components_
    (k, D), bias_ (D,), train_codes_ (N, k), loss_ (cross-entropy per item after fit)."""

    def __init__(
        self, n_components: int, max_iter: int = 300, l2: float = 1e-4, chunk: int = 10_000, random_state: int = 0
    ):
        self.n_components = n_components
        self.max_iter = max_iter
        self.l2 = l2
        self.chunk = chunk
        self.random_state = random_state

    # -- the objective -------------------------------------------------------------------------
    def _loss_backward(self, x, u, v, b) -> float:
        """Mean cross-entropy per item (+ penalty); accumulates gradients chunk by chunk to save memory."""
        n = len(x)
        total = 0.0
        for s in range(0, n, self.chunk):
            logits = u[s : s + self.chunk] @ v + b
            ce = F.binary_cross_entropy_with_logits(logits, x[s : s + self.chunk], reduction="sum") / n
            ce.backward()
            total += float(ce.detach())
        pen = self.l2 * (u.pow(2).sum() / n + v.pow(2).sum())
        pen.backward()
        return total + float(pen.detach())

    def _minimise(self, params, closure_loss) -> float:
        opt = torch.optim.LBFGS(
            params,
            lr=1.0,
            max_iter=self.max_iter,
            history_size=20,
            tolerance_grad=1e-6,
            tolerance_change=1e-9,
            line_search_fn="strong_wolfe",
        )

        def closure():
            opt.zero_grad()
            return torch.tensor(closure_loss())

        opt.step(closure)
        return float(closure_loss())

    # -- estimator API -------------------------------------------------------------------------
    def fit(self, x, y=None) -> LogisticPCA:
        x = _matrix(x, "logistic PCA data")
        if x.min() < 0 or x.max() > 1:
            raise VaekitError(
                f"logistic PCA data: values must lie in [0, 1], got [{float(x.min()):.3g}, {float(x.max()):.3g}]"
            )
        n, d = x.shape
        k = self.n_components
        if not 1 <= k <= min(n, d):
            raise VaekitError(f"logistic PCA: n_components must be in [1, {min(n, d)}], got {k}")
        # start from PCA of the data: basis = principal directions, codes = scores, both scaled into logit units
        mean = x.mean(0).clamp(1e-3, 1 - 1e-3)
        axes = torch.as_tensor(PCA(k).fit(x[:5000]).components_)
        scale = 4.0
        b = torch.logit(mean).contiguous().clone().requires_grad_(True)
        v = (axes * scale).contiguous().clone().requires_grad_(True)
        u = ((x - x.mean(0)) @ axes.T).contiguous().clone().requires_grad_(True)
        torch.manual_seed(self.random_state)
        self.loss_ = self._minimise([u, v, b], lambda: self._loss_backward(x, u, v, b))
        self.components_, self.bias_ = v.detach(), b.detach()
        self.train_codes_ = u.detach()
        return self

    def transform(self, x) -> torch.Tensor:
        """Codes (N, k) minimising the cross-entropy of x with the basis and bias fixed."""
        if not hasattr(self, "components_"):
            raise VaekitError("LogisticPCA: call fit before transform")
        x = _matrix(x, "logistic PCA data")
        if x.shape[1] != self.components_.shape[1]:
            raise VaekitError(
                f"logistic PCA data: items have {x.shape[1]} features, the model was fitted on "
                f"{self.components_.shape[1]}"
            )
        v, b = self.components_, self.bias_
        # start at the least-squares code of the data's deviation from the bias, in logit units
        u = torch.linalg.lstsq(v.T, 4.0 * (x - torch.sigmoid(b)).T).solution.T
        u = u.contiguous().clone().requires_grad_(True)
        self._minimise([u], lambda: self._loss_backward(x, u, v, b))
        return u.detach()

    def inverse_transform(self, codes) -> torch.Tensor:
        """Pixel means sigmoid(codes @ V + bias), shape (N, D)."""
        return torch.sigmoid(torch.as_tensor(codes).float() @ self.components_ + self.bias_)

    def reconstruct(self, x) -> torch.Tensor:
        return self.inverse_transform(self.transform(x))

    def score(self, x) -> float:
        """Mean log-likelihood per item (nats) of x under its optimised codes."""
        x = _matrix(x, "logistic PCA data")
        logits = self.transform(x) @ self.components_ + self.bias_
        return -float(F.binary_cross_entropy_with_logits(logits, x, reduction="sum")) / len(x)


__all__ = ["PCA", "LogisticPCA", "squared_error"]
