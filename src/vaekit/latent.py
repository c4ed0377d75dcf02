"""Looking at a latent space: manifold grids, scatter plots, interpolation, attribute vectors,
nearest neighbours.

Model-agnostic: every function takes a model with `embed`, `generate` and `prior()` (see
`models.base.LatentVariableModel`) or plain code tensors, and returns tensors; the `plot_*`
helpers draw them.

    manifold(model, n)                    decoded grid placed by the prior's inverse CDF
    project(z, "axes" | "tsne")           codes -> 2-D for a scatter plot
    lerp / slerp / interpolate            paths between two codes, decoded as a strip
    attribute_vector(z, has)              mean(z | attribute) - mean(z | not attribute)
    apply_attribute / remove_attribute    z + alpha v (or kept on its norm's shell);  set the coordinate along v
                                          to a reference
    nearest_neighbours(zq, zb, k)         Euclidean neighbours in latent space
    ascend(f, z0, steps)                  gradient ascent of f(z) over codes (Adam)
    refine_codes(model, x)                MAP codes by gradient steps from the encoder's guess
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .baselines import PCA


def to_images(x) -> np.ndarray:
    """`(N, *shape)` -> (N, H, W) or (N, H, W, 3) float array for display; flat vectors become square-ish."""
    x = torch.as_tensor(x).detach().cpu().float()
    if x.dim() == 2:
        d = x.shape[1]
        side = int(math.isqrt(d))
        if side * side != d:
            raise ValueError(f"cannot show items of shape {tuple(x.shape[1:])} as images")
        x = x.reshape(-1, side, side)
    if x.dim() == 4:
        x = x[:, 0] if x.shape[1] == 1 else x.permute(0, 2, 3, 1)
    return x.clamp(0, 1).numpy()


def image_grid(images, ncol: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile (N, H, W[, 3]) images into one array, `ncol` per row (white padding)."""
    ims = to_images(images)
    n, h, w = ims.shape[:3]
    ncol = ncol or int(math.ceil(math.sqrt(n)))
    nrow = int(math.ceil(n / ncol))
    grid = np.ones((nrow * (h + pad) + pad, ncol * (w + pad) + pad, *ims.shape[3:]), dtype=np.float32)
    for i, im in enumerate(ims):
        r, c = divmod(i, ncol)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = im
    return grid


def principal_axes(z: torch.Tensor, n: int = 2) -> torch.Tensor:
    """The first n principal directions of codes z (N, D), as rows of an (n, D) matrix (`baselines.PCA`'s);
    at most min(N, D) of them."""
    return torch.as_tensor(PCA(min(n, *z.shape)).fit(z).components_)


@torch.no_grad()
def manifold(model, n: int = 15, data=None, axes: torch.Tensor | None = None, span: float = 0.95) -> torch.Tensor:
    """Decode an n x n grid of latent points placed by the prior's inverse CDF (Kingma & Welling, Fig. 4).

    For a 2-D latent the grid covers the two latent coordinates. For more dimensions it lies in
    the plane of `axes` (default: the principal axes of the posterior means of `data`) through
    the mean code. Returns decoded means of shape `(n * n, *data_shape)`, row-major from the top.
    """
    from scipy.stats import norm

    q = torch.tensor(norm.ppf(np.linspace(1 - span, span, n)), dtype=torch.float32)
    gy, gx = torch.meshgrid(q.flip(0), q, indexing="ij")
    grid = torch.stack([gx.flatten(), gy.flatten()], 1)  # (n*n, 2)
    d = model.config.latent_dim
    device = next(model.parameters()).device
    if d == 2 and axes is None:
        z = grid
    else:
        if axes is None:
            if data is None:
                axes, centre = torch.eye(d)[:2], torch.zeros(d)
            else:
                codes = model.embed(torch.as_tensor(data).to(device)).cpu()
                axes, centre = principal_axes(codes), codes.mean(0)
                axes = axes * (codes - centre).matmul(axes.T).std(0)[:, None]  # one posterior std per unit
        else:
            centre = torch.zeros(d)
        z = centre + grid.matmul(axes)
    return model.generate(z.to(device)).cpu()


def plot_images(ax, images, ncol=None, title=None):
    ims = image_grid(images, ncol)
    ax.imshow(ims, cmap="gray" if ims.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)


def plot_scatter(ax, z, labels=None, title=None, max_points: int = 5000):
    """Latent codes (N, 2) coloured by integer labels (a legend per class)."""
    z = torch.as_tensor(z).cpu().numpy()[:max_points]
    if labels is None:
        ax.scatter(z[:, 0], z[:, 1], s=3, alpha=0.6)
    else:
        labels = np.asarray(torch.as_tensor(labels).cpu())[:max_points]
        sc = ax.scatter(z[:, 0], z[:, 1], c=labels, cmap="tab10", s=3, alpha=0.7)
        if len(np.unique(labels)) <= 20:
            ax.legend(*sc.legend_elements(), loc="best", fontsize=7, markerscale=0.8, title="label")
    ax.set_xlabel("z1")
    ax.set_ylabel("z2")
    if title:
        ax.set_title(title)


# -- codes found by optimisation ------------------------------------------------------------------
def ascend(
    f,
    z0: torch.Tensor,
    steps: int,
    lr: float = 0.05,
    prior_weight: float = 0.0,
    project: bool = False,
    every: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient ascent in latent space: Adam on sum_i f(z)_i - prior_weight/2 ||z_i||^2 over codes z, from z0 (n, d).

    f(z) -> (n,), differentiable in z: a property head, a log-likelihood. Only z moves; the weights f uses
    are not changed. project=True puts each code back on the prior's typical shell ||z|| = sqrt(d) after
    every step. Returns the path (k, n, d) and f along it (k, n) at steps 0, every, 2*every, ..., steps
    (default every = steps: the start and the end).
    """
    from .errors import VaekitError

    every = every or max(steps, 1)
    d = z0.shape[1]
    z = z0.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    path, values = [], []
    for t in range(steps + 1):
        with torch.enable_grad():
            v = f(z).reshape(-1)
            if v.shape[0] != z.shape[0]:
                raise VaekitError(f"f(z) returned {v.shape[0]} values for {z.shape[0]} codes")
            if t % every == 0 or t == steps:
                path.append(z.detach().clone())
                values.append(v.detach().clone())
            if t == steps:
                break
            if not v.requires_grad:
                raise VaekitError(
                    "f(z) does not depend differentiably on z (is it under torch.no_grad?); "
                    "pass a differentiable f, e.g. model.predict_properties(z, grad=True)"
                )
            objective = v.sum() - 0.5 * prior_weight * (z * z).sum() if prior_weight else v.sum()
            (grad,) = torch.autograd.grad(objective, z)
        z.grad = -grad
        opt.step()
        if project:
            with torch.no_grad():
                z.mul_(math.sqrt(d) / z.norm(dim=1, keepdim=True).clamp_min(1e-12))
    return torch.stack(path), torch.stack(values)


def refine_codes(model, x, steps: int = 150, lr: float = 0.05, prior_weight: float = 1.0) -> torch.Tensor:
    """MAP codes: maximise log p(x|z) + prior_weight * log p(z) over z by Adam (`ascend`), from the encoder's mean.

    The encoder is an amortised guess; on items unlike the training set (held-out fonts, say) a
    few gradient steps on z alone close part of the amortisation gap (cf. Kim et al. 2018,
    "Semi-amortized variational autoencoders"). The model's weights are not changed.
    x: `(N, *data_shape)` -> codes (N, latent_dim), on the CPU.
    """
    device = next(model.parameters()).device
    x = torch.as_tensor(x).float().to(device)
    with torch.no_grad():
        z0 = model.embed(x)

    def log_joint(z):  # per item, divided by N: the steps of the mean over the batch
        return (model.decode(z).log_prob(x) + prior_weight * model.prior().log_prob(z)) / len(x)

    path, _ = ascend(log_joint, z0, steps, lr)
    return path[-1].cpu()


# -- scatter of codes ----------------------------------------------------------------------------
@torch.no_grad()
def embed(model, data, batch_size: int = 1000) -> torch.Tensor:
    """Posterior means of `data` `(N, *shape)` in batches, on the CPU, shape (N, latent_dim)."""
    x = torch.as_tensor(data.x if hasattr(data, "x") else data).float()
    device = next(model.parameters()).device
    return torch.cat([model.embed(xb.to(device)).cpu() for xb in x.split(batch_size)])


def project(z, method: str = "axes", axes: torch.Tensor | None = None, seed: int = 0) -> torch.Tensor:
    """Codes (N, D) -> (N, 2) for a scatter plot.

    "axes": the codes themselves when D = 2, else their coordinates on two chosen directions
    (`axes` (2, D), default the two principal axes, measured from the mean code).
    "tsne": scikit-learn's t-SNE (a picture of neighbourhoods, not of distances).
    """
    z = torch.as_tensor(z).float().cpu()
    if z.dim() != 2:
        raise ValueError(f"codes must have shape (N, D), got {tuple(z.shape)}")
    if method == "axes":
        if z.shape[1] == 2 and axes is None:
            return z
        axes = principal_axes(z) if axes is None else torch.as_tensor(axes).float()
        return (z - z.mean(0)).matmul(axes.T)
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, max(2.0, (len(z) - 1) / 3)))
        out = TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(z.numpy())
        return torch.from_numpy(out).float()
    raise ValueError(f"unknown projection {method!r}; choose 'axes' or 'tsne'")


# -- interpolation -------------------------------------------------------------------------------
def lerp(z0: torch.Tensor, z1: torch.Tensor, steps: int = 10) -> torch.Tensor:
    """Points on the straight line from z0 to z1 (both (D,)), shape (steps, D), ends included."""
    t = torch.linspace(0, 1, steps, dtype=z0.dtype)[:, None]
    return (1 - t) * z0 + t * z1


def slerp(z0: torch.Tensor, z1: torch.Tensor, steps: int = 10) -> torch.Tensor:
    """Spherical interpolation (along the great circle, radius interpolated linearly), (steps, D).

    Under a N(0, I) prior, points on the straight line between two codes have a smaller norm than
    typical samples; slerp keeps them on the shell where the prior's mass lies (White 2016).
    """
    t = torch.linspace(0, 1, steps, dtype=z0.dtype)[:, None]
    r0, r1 = z0.norm(), z1.norm()
    u0, u1 = z0 / r0.clamp_min(1e-12), z1 / r1.clamp_min(1e-12)
    omega = torch.arccos((u0 * u1).sum().clamp(-1.0, 1.0))
    if float(omega) < 1e-6:  # (anti-)parallel within rounding: nothing to bend
        return lerp(z0, z1, steps)
    s = torch.sin(omega)
    u = (torch.sin((1 - t) * omega) * u0 + torch.sin(t * omega) * u1) / s
    return ((1 - t) * r0 + t * r1) * u


@torch.no_grad()
def interpolate(model, x0, x1, steps: int = 10, method: str = "linear") -> torch.Tensor:
    """Decode the path between the codes of two items x0, x1 (each `(*data_shape)`); `(steps, *data_shape)`."""
    path = {"linear": lerp, "spherical": slerp, "slerp": slerp}.get(method)
    if path is None:
        raise ValueError(f"unknown interpolation {method!r}; choose 'linear' or 'spherical'")
    device = next(model.parameters()).device
    z = model.embed(torch.stack([torch.as_tensor(x0), torch.as_tensor(x1)]).float().to(device)).cpu()
    return model.generate(path(z[0], z[1], steps).to(device)).cpu()


# -- attribute vectors ---------------------------------------------------------------------------
def attribute_vector(z, has, groups=None) -> torch.Tensor:
    """The direction mean(z | attribute) - mean(z | not attribute), shape (D,).

    z: codes (N, D); has: booleans (N,). Both groups must be non-empty.  With `groups` (N,) (any hashable
    labels, e.g. a font's family and its other styles), the difference is taken within each group that has
    items with and without the attribute, and averaged over those groups: the direction then changes the
    attribute alone, not whatever else differs between the two sets (bold fonts are also more often sans).
    """
    z = torch.as_tensor(z).float()
    has = torch.as_tensor(np.asarray(has, dtype=bool))
    if has.shape != z.shape[:1]:
        raise ValueError(f"attribute flags have shape {tuple(has.shape)} but there are {len(z)} codes")
    if not has.any() or has.all():
        raise ValueError(
            f"attribute vector needs items with and without the attribute (got {int(has.sum())} of {len(has)} with it)"
        )
    if groups is None:
        return z[has].mean(0) - z[~has].mean(0)
    labels = list(groups)
    if len(labels) != len(z):
        raise ValueError(f"{len(labels)} group labels for {len(z)} codes")
    members: dict = {}
    for i, g in enumerate(labels):
        members.setdefault(g, []).append(i)
    diffs = []
    for idx in members.values():
        idx = torch.as_tensor(idx)
        h = has[idx]
        if h.any() and not h.all():
            diffs.append(z[idx][h].mean(0) - z[idx][~h].mean(0))
    if not diffs:
        raise ValueError("attribute vector: no group has items both with and without the attribute")
    return torch.stack(diffs).mean(0)


def apply_attribute(z, v, alphas, method: str = "linear") -> torch.Tensor:
    """z + alpha * v for every alpha: codes (N, D) or (D,), alphas (A,) -> (A, N, D) or (A, D).

    method "spherical": each moved code is then scaled back to its own norm.  A step along v changes the
    norm (|z + a v|^2 = |z|^2 + 2a z.v + a^2 |v|^2), and under a N(0, I) prior the codes the decoder was trained
    on lie near a shell (see `slerp`): far along v, a straight-line edit leaves it and the decoder draws
    what it never saw.  Scaling back keeps the edit on the shell, as slerp keeps an interpolation on it."""
    if method not in ("linear", "spherical"):
        raise ValueError(f"unknown attribute edit {method!r}; choose 'linear' or 'spherical'")
    z, v = torch.as_tensor(z).float(), torch.as_tensor(v).float()
    a = torch.as_tensor(alphas, dtype=torch.float32).reshape(-1, *([1] * z.dim()))
    moved = z.unsqueeze(0) + a * v
    if method == "spherical":
        moved = moved * (z.norm(dim=-1, keepdim=True) / moved.norm(dim=-1, keepdim=True).clamp_min(1e-12))
    return moved


@torch.no_grad()
def reencode(model, z, batch_size: int = 256) -> torch.Tensor:
    """Decode codes and encode what was drawn: the posterior means of `model.generate(z)`, same shape as z.

    An edit such as `apply_attribute` far along v can carry a code where the encoder never puts an item;
    the decoder then draws something between glyphs.  One pass through decoder and encoder returns the code
    the encoder gives to the item drawn, which lies where the training items' codes lie (they are close to
    fixed points of this map when the model reconstructs well); what the edit changed in the drawing is kept."""
    z = torch.as_tensor(z).float()
    flat = z.reshape(-1, z.shape[-1])
    device = next(model.parameters()).device
    out = [model.embed(model.generate(zb.to(device))).float().cpu() for zb in flat.split(batch_size)]
    return torch.cat(out).reshape(z.shape)


def remove_attribute(z, v, reference) -> torch.Tensor:
    """Move codes along v until their coordinate on v equals that of `reference` (e.g. the mean code
    of the items without the attribute); directions orthogonal to v are untouched.  (N, D) -> (N, D)."""
    z, v = torch.as_tensor(z).float(), torch.as_tensor(v).float()
    ref = torch.as_tensor(reference).float()
    coef = ((z - ref) @ v) / v.dot(v).clamp_min(1e-12)
    return z - coef[..., None] * v


@torch.no_grad()
def attribute_strip(model, x, v, alphas) -> torch.Tensor:
    """Decode item x `(*data_shape)` moved along v by each alpha: `(A, *data_shape)`."""
    device = next(model.parameters()).device
    z = model.embed(torch.as_tensor(x).float()[None].to(device)).cpu()[0]
    return model.generate(apply_attribute(z, v, alphas).to(device)).cpu()


# -- neighbours ----------------------------------------------------------------------------------
def nearest_neighbours(z_query, z_bank, k: int = 5, exclude_self: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Euclidean k nearest codes in `z_bank` (M, D) for each query (N, D): (distances, indices), (N, k).

    With exclude_self (query and bank the same set), an item is not its own neighbour.
    """
    q, b = torch.as_tensor(z_query).float(), torch.as_tensor(z_bank).float()
    d = torch.cdist(q, b)
    if exclude_self:
        if q.shape != b.shape:
            raise ValueError("exclude_self needs the query and the bank to be the same codes")
        d.fill_diagonal_(float("inf"))
    k = min(k, b.shape[0] - int(exclude_self))
    dist, idx = d.topk(k, dim=1, largest=False)
    return dist, idx


def plot_strip(ax, images, labels=None, title=None):
    """One row of images (A, H, W), optionally with a label under each (e.g. the alpha values)."""
    ims = to_images(images)
    plot_images(ax, ims, ncol=len(ims), title=title)
    if labels is not None:
        h, w = ims.shape[1:3]
        for i, lab in enumerate(labels):
            ax.text(1 + i * (w + 1) + w / 2, h + 2, str(lab), ha="center", va="top", fontsize=7)
