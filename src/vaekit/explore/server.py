"""`vaekit explore RUN_DIR`: a local web app to look at a trained model's latent space.

One `Explorer` per run holds the model, the encoded data set (posterior means), the 2-D map
(the plane of `latent.project`: the codes themselves for a 2-D latent, else the two principal
axes through the mean code) and the slider directions (principal axes, or each latent
coordinate when the latent is small, plus the attribute vectors of a font run). The browser
does the geometry (z = centre + x a1 + y a2 + sum s_i d_i) and asks the server to decode.

    GET  /api/info          kind, latent size, map points + labels, plane, slider directions
    POST /api/encode        {"index": [i, ...]} or {"x": [...]} (or {"smiles": [...]})  -> codes and map positions
    POST /api/decode        {"z": [[...], ...], "format": "png"|"svg"|"array", "word": "Latent"}
    POST /api/interpolate   {"a": i, "b": j} or {"za": [...], "zb": [...]}, "steps", "method"
    POST /api/sample        {"sampler": "prior"|"gmm"|"twostage", "n": 8, "seed": 0}  -> codes, map positions, items
                            (a fitted sampler is fitted on the codes of the items the map shows, once)

A chemical VAE run is a "molecule" run: the map shows ~2,000 molecules of its data set (MOSES
test split by default) coloured by logP ("values"), and each decoded code is a dict with the
greedy-decoded SMILES, whether RDKit parses it, the canonical SMILES, logP/QED/SA of the molecule, whether
it passes the filters the MOSES data set was built with (else the alert it raises),
the property head's prediction and an RDKit SVG drawing as a data: URL (None when invalid).

Every request is checked (latent size, finite numbers within range, sizes, JSON); bad input is a
4xx with a one-line message, and an answer that would hold a non-finite number is a 422 instead.
Static files come only from this package's `static/` folder.

The server answers only to its own name (the Host header must be 127.0.0.1, localhost or [::1] with
its port, or the --host it binds), so a web page cannot reach it through DNS rebinding; a POST must
carry `Content-Type: application/json` and, when the browser sends an Origin, the server's own one,
so no other site can drive it (CSRF). Every answer carries a Content-Security-Policy that allows
only the page's own script and style files, and nosniff/no-referrer/no-framing headers.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import math
import socket
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import latent, samplers
from ..errors import VaekitError

STATIC = Path(__file__).resolve().parent / "static"
MAX_BODY = 1 << 20  # bytes of one request
MAX_BATCH = 256  # latent vectors per decode request
MAX_STEPS = 64  # points on an interpolation path
MAX_POINTS = 3000  # points sent for the map
MAX_WORD = 24  # characters of a font word
MAX_SMILES = 500  # characters of one SMILES string to encode
N_MOLECULES = 2000  # molecules encoded for the map of a molecule run
COLOUR_BY = "logP"  # the property that colours a molecule map
SVG_SIZE = (300, 220)  # pixels of a molecule drawing
SMALL_LATENT = 8  # up to this size, one slider per latent coordinate
N_AXES = 8  # otherwise, this many principal-axis sliders
LIMIT = 1e4  # numbers taken (latent values, item values): within ±LIMIT, or ±100x the
# largest in the run's data when that is larger
LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
WILDCARD = ("0.0.0.0", "::", "")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


class BadRequest(Exception):
    """Bad input to the API: answered with `status` and the one-line message."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def data_kind(model) -> str:
    """'font' (a fontvae), 'molecule' (a chemvae), 'image' (2-D or 3-D items, or flat square vectors)
    or 'field' (1-D)."""
    kind = getattr(model, "item_kind", "array")  # the model says what its items are
    if kind in ("font", "molecule"):
        return kind
    shape = tuple(model.config.data_shape)
    if len(shape) >= 2 or math.isqrt(shape[0]) ** 2 == shape[0] and shape[0] >= 16:
        return "image"
    return "field"


def png_data_url(img: np.ndarray) -> str:
    """(H, W) or (H, W, 3) floats in [0, 1] -> 'data:image/png;base64,...'."""
    from PIL import Image

    a = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _range(t: torch.Tensor) -> float:
    """The magnitude bound for numbers like those in `t`: LIMIT, or 100x the largest finite one (at most
    1e30, well inside float32)."""
    t = t[torch.isfinite(t)]
    return max(LIMIT, min(1e30, 100 * float(t.abs().max()))) if t.numel() else LIMIT


def _finite(v: float) -> float | None:
    """A number JSON can carry: NaN/inf become None."""
    v = float(v)
    return v if math.isfinite(v) else None


@functools.lru_cache(maxsize=4096)
def molecule_card(smiles: str) -> tuple:
    """What the page shows of one decoded string, cached (hovering decodes the same molecules again and
    again): (valid, canonical SMILES, (logP, QED, SAS), "pass" or the MOSES filter it fails, SVG data URL).
    The drawing is RDKit's SVG text only, base64-encoded into a data: URL so the page shows it in an <img> (no
    markup enters the page)."""
    from rdkit.Chem.Draw import rdMolDraw2D

    from ..chem import filters, props

    m = props.mol(smiles)
    if m is None or m.GetNumAtoms() == 0:
        return False, None, (None, None, None), None, None
    can = props.canonical(smiles)
    if can is None:  # RDKit read it above, so it has a canonical form; the type allows None
        return False, None, (None, None, None), None, None
    scores = tuple(_finite(f(can)) for f in (props.logp, props.qed, props.sa_score))
    alert = filters.failed(m) or "pass"
    try:
        draw = rdMolDraw2D.MolDraw2DSVG(*SVG_SIZE)
        rdMolDraw2D.PrepareAndDrawMolecule(draw, m)
        draw.FinishDrawing()
        svg = "data:image/svg+xml;base64," + base64.b64encode(draw.GetDrawingText().encode()).decode("ascii")
    except Exception:  # RDKit parses a few molecules it cannot lay out (e.g. kekulisation fails)
        svg = None
    return True, can, scores, alert, svg


class Explorer:
    """A model, its encoded data and everything the page needs, with checked decode/encode calls."""

    def __init__(
        self,
        model,
        x,
        labels=None,
        attributes: dict | None = None,
        attribute_groups: dict | None = None,
        name: str = "run",
        chars: str | None = None,
        max_points: int = MAX_POINTS,
        seed: int = 0,
        values=None,
        value_name: str | None = None,
        smiles: list[str] | None = None,
        standardization=None,
    ):
        """`attributes` ({name: one flag per item}) become slider directions; `attribute_groups` ({name: one
        label per item}, e.g. a font's family and other styles) measures each within its groups
        (`latent.attribute_vector`).  `values` (one number per item, e.g. logP) colour the map on a continuous
        scale instead of `labels`; `smiles` names the items of a molecule run; `standardization` (a
        `data.Standardization`, for a run trained with --standardize) maps items in their own units to the
        model's and back."""
        self.model = model.eval()
        self.name = name
        self.kind = data_kind(model)
        self.lock = threading.Lock()  # one forward pass at a time; torch shares the cores anyway
        self.latent_dim = int(model.config.latent_dim)
        self.data_shape = tuple(int(s) for s in model.config.data_shape)
        x = torch.as_tensor(x).float()
        if tuple(x.shape[1:]) != self.data_shape:
            raise VaekitError(f"data items have shape {tuple(x.shape[1:])} but the model expects {self.data_shape}")
        if len(x) > max_points:  # a fixed random subset keeps the page light
            keep = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:max_points].sort().values
            x = x[keep]
            labels = None if labels is None else np.asarray(labels)[keep.numpy()]
            values = None if values is None else np.asarray(values)[keep.numpy()]
            smiles = None if smiles is None else [smiles[i] for i in keep.tolist()]
            attributes = {k: np.asarray(v)[keep.numpy()] for k, v in (attributes or {}).items()}
            attribute_groups = {k: [v[i] for i in keep.tolist()] for k, v in (attribute_groups or {}).items()}
        self.x = x
        self.labels = None if labels is None else [int(v) for v in np.asarray(labels).reshape(-1)]
        self.values = None if values is None else [_finite(v) for v in np.asarray(values, dtype=float).reshape(-1)]
        if self.values is not None and len(self.values) != len(x):
            raise VaekitError(f"{len(self.values)} colour values for {len(x)} data items")
        self.value_name = value_name if self.values is not None else None
        self.smiles = smiles
        self.st = standardization
        self.samplers: dict[str, Any] = {}  # name -> sampler fitted on the codes of the items shown, on first use
        self.z = latent.embed(model, x if self.st is None else self.st.apply(x))
        self.x_limit, self.z_limit = _range(x), _range(self.z)  # the numbers requests may hold
        self.centre, self.plane = self._plane()
        self.xy = latent.project(self.z, "axes", axes=None if self.latent_dim == 2 else self.plane)
        self.directions = self._directions(attributes or {}, attribute_groups or {})
        if self.kind == "font":
            from ..data.fonts import CHARS

            self.chars = chars or CHARS[: self.data_shape[0]]

    # -- geometry -----------------------------------------------------------------------------
    def _plane(self):
        d = self.latent_dim
        if d == 2:
            return torch.zeros(2), torch.eye(2)
        if d == 1:
            return self.z.mean(0), torch.ones(2, 1) * torch.tensor([[1.0], [0.0]])
        return self.z.mean(0), latent.principal_axes(self.z, 2)

    def _directions(self, attributes: dict, groups: dict) -> list[dict]:
        """Slider directions: unit latent coordinates or principal axes (one posterior std per unit),
        then attribute vectors (unit = the vector itself; measured within `groups` where given and some group
        has the attribute both ways).  The page moves a code along an attribute keeping its norm, as
        `latent.apply_attribute(..., method="spherical")` does."""
        out = []
        std = self.z.std(0) if len(self.z) > 1 else torch.ones(self.latent_dim)
        if self.latent_dim <= SMALL_LATENT:
            for i in range(self.latent_dim):
                v = torch.zeros(self.latent_dim)
                v[i] = float(std[i]) or 1.0
                out.append({"name": f"z{i + 1}", "type": "coordinate", "vector": v.tolist()})
        else:
            axes = latent.principal_axes(self.z, min(N_AXES, self.latent_dim, len(self.z)))
            spread = (self.z - self.z.mean(0)).matmul(axes.T).std(0)
            for i, (a, s) in enumerate(zip(axes, spread)):
                out.append({"name": f"PC{i + 1}", "type": "axis", "vector": (a * float(s)).tolist()})
        for name, has in attributes.items():
            has = np.asarray(has, dtype=float)
            ok = ~np.isnan(has)
            z, flags = self.z[torch.from_numpy(ok)], has[ok] > 0.5
            try:
                v = latent.attribute_vector(z, flags)
            except ValueError:
                continue  # every font (or none) has it: no direction to show
            if name in groups:
                try:
                    v = latent.attribute_vector(z, flags, [g for g, k in zip(groups[name], ok) if k])
                except ValueError:
                    pass  # no group has it both ways: the plain difference of the means
            out.append({"name": name, "type": "attribute", "vector": v.tolist()})
        return out

    def info(self) -> dict:
        return {
            "run": self.name,
            "kind": self.kind,
            "latent_dim": self.latent_dim,
            "data_shape": list(self.data_shape),
            "model": type(self.model).__name__,
            "n": len(self.z),
            "points": self.xy.tolist(),
            "labels": self.labels,
            "values": self.values,
            "value_name": self.value_name,
            "smiles": self.smiles,
            "properties": list(getattr(self.model.config, "properties", ())) if self.kind == "molecule" else None,
            "centre": self.centre.tolist(),
            "plane": self.plane.tolist(),
            "directions": self.directions,
            "chars": getattr(self, "chars", None),
            "samplers": sorted(samplers.SAMPLERS),
            "limits": {
                "batch": MAX_BATCH,
                "steps": MAX_STEPS,
                "body_bytes": MAX_BODY,
                "word": MAX_WORD,
                "z": self.z_limit,
                "x": self.x_limit,
            },
        }

    # -- checked inputs ------------------------------------------------------------------------
    def codes(self, value, field: str = "z") -> torch.Tensor:
        """A list of latent vectors (or one vector) -> (N, D) tensor; BadRequest when it is not one."""
        if isinstance(value, list) and value and not isinstance(value[0], list):
            value = [value]
        if not isinstance(value, list) or not value:
            raise BadRequest(f"field {field!r} must be a non-empty list of latent vectors of length {self.latent_dim}")
        if len(value) > MAX_BATCH:
            raise BadRequest(f"field {field!r} has {len(value)} vectors; at most {MAX_BATCH} per request", 413)
        for i, row in enumerate(value):
            if not isinstance(row, list) or len(row) != self.latent_dim:
                got = len(row) if isinstance(row, list) else type(row).__name__
                raise BadRequest(f"field {field!r} item {i} must be a list of {self.latent_dim} numbers, got {got}")
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in row):
                raise BadRequest(f"field {field!r} item {i} must hold numbers only")
            if any(isinstance(v, float) and not math.isfinite(v) for v in row):
                raise BadRequest(f"field {field!r} item {i} holds NaN or infinite values")
            if any(abs(v) > self.z_limit for v in row):  # exact for ints of any size
                raise BadRequest(
                    f"field {field!r} item {i} holds a number too large for a latent value: "
                    f"this run takes finite numbers from {-self.z_limit:g} to {self.z_limit:g}"
                )
        return torch.tensor(value, dtype=torch.float32)

    def index(self, value, field: str) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < len(self.z):
            raise BadRequest(f"field {field!r} must be an item index from 0 to {len(self.z) - 1}, got {value!r}")
        return value

    def word(self, value) -> list[int]:
        word = "Latent" if value is None else value
        if not isinstance(word, str) or not 1 <= len(word) <= MAX_WORD:
            raise BadRequest(f"field 'word' must be a string of 1 to {MAX_WORD} characters")
        bad = sorted({c for c in word if c not in self.chars})
        if bad:
            raise BadRequest(
                f"field 'word' has characters the font model cannot draw: {''.join(bad)!r} "
                f"(it knows {self.chars[:10]}...)"
            )
        return [self.chars.index(c) for c in word]

    # -- model calls ---------------------------------------------------------------------------
    @torch.no_grad()
    def decode(self, z: torch.Tensor, fmt: str | None = None, word=None) -> list:
        if self.kind == "molecule":
            return self.decode_molecules(z, fmt)
        fmt = "png" if fmt is None else fmt
        if fmt not in ("png", "array"):
            raise BadRequest(f"field 'format' must be 'png' or 'array', got {fmt!r}")
        glyphs = self.word(word) if self.kind == "font" else None
        with self.lock:
            x = self.model.generate(z).cpu()
        if self.st is not None:
            x = self.st.undo(x)  # back to the items' own units
        if not torch.isfinite(x).all():
            raise BadRequest(
                "the model's output for this code is not finite (NaN or infinite); try a code nearer the data", 422
            )
        if glyphs is not None:
            x = x[:, glyphs]  # (N, len(word), H, W)
        if fmt == "array" or self.kind == "field":
            return [xi.tolist() for xi in x]
        if glyphs is not None:
            return [png_data_url(latent.image_grid(xi, ncol=len(glyphs), pad=0)) for xi in x]
        return [png_data_url(im) for im in latent.to_images(x.reshape(len(x), *self._image_shape()))]

    @torch.no_grad()
    def decode_molecules(self, z: torch.Tensor, fmt: str | None = None) -> list:
        """Greedy decoding of each code: token ids ("array") or one dict per code ("svg", the default)."""
        fmt = "svg" if fmt is None else fmt
        if fmt not in ("svg", "array"):
            raise BadRequest(f"field 'format' must be 'svg' or 'array' for a molecule run, got {fmt!r}")
        with self.lock:
            ids = self.model.generate(z).cpu()
            head = self.model.property_head is not None
            pred = self.model.predict_properties(z).cpu().tolist() if head else None
        if fmt == "array":
            return ids.tolist()
        names = list(self.model.config.properties)
        out = []
        for i, s in enumerate(self.model.vocab.decode(ids)):
            valid, can, scores, alert, svg = molecule_card(s)
            out.append(
                {
                    "smiles": s,
                    "valid": valid,
                    "canonical": can,
                    "props": dict(zip(("logP", "QED", "SAS"), scores)) if valid else None,
                    "filters": alert,  # "pass", or why the molecule fails MOSES's filters (chem.filters)
                    "predicted": {n: _finite(v) for n, v in zip(names, pred[i])} if pred is not None else None,
                    "svg": svg,
                }
            )
        return out

    def _image_shape(self):
        s = self.data_shape
        if len(s) == 1:
            side = math.isqrt(s[0])
            return (side, side)
        return s

    @torch.no_grad()
    def encode_items(self, x) -> torch.Tensor:
        if not isinstance(x, list) or not x:
            raise BadRequest("field 'x' must be a non-empty list of items")
        if len(x) > MAX_BATCH:
            raise BadRequest(f"field 'x' has {len(x)} items; at most {MAX_BATCH} per request", 413)
        try:
            t = torch.tensor(x, dtype=torch.float32)
        except (OverflowError, RuntimeError, TypeError, ValueError):
            raise BadRequest(f"field 'x' must be a list of numeric arrays of shape {list(self.data_shape)}") from None
        if tuple(t.shape[1:]) != self.data_shape:
            raise BadRequest(
                f"field 'x' items have shape {list(t.shape[1:])}, the model expects {list(self.data_shape)}"
            )
        if not torch.isfinite(t).all():
            raise BadRequest("field 'x' holds NaN or infinite values (or numbers beyond float32)")
        if self.kind == "molecule":  # the first max_len numbers are token ids
            ids, n_tok = t[:, : self.model.config.max_len], len(self.model.vocab)
            if not ((ids == ids.round()) & (ids >= 0) & (ids < n_tok)).all():
                raise BadRequest(
                    f"field 'x' items must start with {self.model.config.max_len} token ids, "
                    f"whole numbers from 0 to {n_tok - 1}"
                )
        if (t.abs() > self.x_limit).any():
            raise BadRequest(
                f"field 'x' holds numbers too large for this run's items: "
                f"it takes {-self.x_limit:g} to {self.x_limit:g}"
            )
        if self.st is not None:
            t = self.st.apply(t)
        with self.lock:
            return self.finite_code(self.model.embed(t).cpu(), "x")

    @torch.no_grad()
    def encode_smiles(self, smiles) -> torch.Tensor:
        """Posterior means of SMILES strings (a molecule run only)."""
        if self.kind != "molecule":
            raise BadRequest("field 'smiles' needs a molecule run (a chemvae); give 'x' or 'index'")
        if isinstance(smiles, str):
            smiles = [smiles]
        if not isinstance(smiles, list) or not smiles:
            raise BadRequest("field 'smiles' must be a SMILES string or a non-empty list of them")
        if len(smiles) > MAX_BATCH:
            raise BadRequest(f"field 'smiles' has {len(smiles)} strings; at most {MAX_BATCH} per request", 413)
        for i, s in enumerate(smiles):
            if not isinstance(s, str) or not 0 < len(s) <= MAX_SMILES:
                raise BadRequest(f"field 'smiles' item {i} must be a string of 1 to {MAX_SMILES} characters")
        try:
            with self.lock:
                return self.finite_code(self.model.encode_smiles(smiles).cpu(), "smiles")
        except VaekitError as e:  # a token outside the vocabulary, too long, not translatable
            raise BadRequest(" ".join(str(e).split())[:300]) from None

    @staticmethod
    def finite_code(z: torch.Tensor, field: str) -> torch.Tensor:
        if not torch.isfinite(z).all():
            raise BadRequest(
                f"the model's code for field {field!r} is not finite (NaN or infinite); try items nearer the data", 422
            )
        return z

    def to_map(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.centre).matmul(self.plane.T)

    # -- requests ------------------------------------------------------------------------------
    def api_encode(self, body: dict) -> dict:
        if "index" in body:
            idx = body["index"]
            idx = [idx] if isinstance(idx, int) else idx
            if not isinstance(idx, list) or not idx or len(idx) > MAX_BATCH:
                raise BadRequest(f"field 'index' must be an index or a list of 1 to {MAX_BATCH} indices")
            z = self.z[[self.index(i, "index") for i in idx]]
        elif "x" in body:
            z = self.encode_items(body["x"])
        elif "smiles" in body:
            z = self.encode_smiles(body["smiles"])
        else:
            raise BadRequest(
                "give 'index' (items of the run's data), 'x' (items to encode) or 'smiles' "
                "(molecules, for a molecule run)"
            )
        return {"z": z.tolist(), "xy": self.to_map(z).tolist()}

    def api_decode(self, body: dict) -> dict:
        z = self.codes(body.get("z"))
        return {"items": self.decode(z, body.get("format"), body.get("word"))}

    def sampler(self, name):
        """Sampler `name`, fitted (once, seeded) on the posterior means of the items the map shows."""
        try:
            cls = samplers.get(name)
        except VaekitError as e:
            raise BadRequest(f"field 'sampler': {e}") from None
        if name not in self.samplers:
            try:
                self.samplers[name] = samplers.fit(name, self.model, self.z if cls.uses_codes else None)
            except VaekitError as e:  # e.g. fewer codes than the sampler needs
                raise BadRequest(
                    f"sampler {name!r} cannot be fitted on this run's {len(self.z)} codes: {e}", 422
                ) from None
        return self.samplers[name]

    def api_sample(self, body: dict) -> dict:
        """Codes drawn from a sampler (the prior, or one fitted ex post on the codes of the items shown),
        their map positions and their decodings."""
        n, seed = body.get("n", 8), body.get("seed", 0)
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_BATCH:
            raise BadRequest(f"field 'n' must be an integer from 1 to {MAX_BATCH}, got {n!r:.40}")
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
            raise BadRequest(f"field 'seed' must be an integer from 0 to 2**63 - 1, got {seed!r:.40}")
        name = body.get("sampler", "prior")
        with self.lock:
            sampler = self.sampler(name)
            z = sampler.sample(n, torch.Generator().manual_seed(seed)).float()
        z = self.finite_code(z, "sampler")
        return {
            "z": z.tolist(),
            "xy": self.to_map(z).tolist(),
            "items": self.decode(z, body.get("format"), body.get("word")),
            "sampler": name,
            "fitted_on": getattr(sampler, "n_codes", 0),
        }

    def api_interpolate(self, body: dict) -> dict:
        steps = body.get("steps", 10)
        if not isinstance(steps, int) or isinstance(steps, bool) or not 2 <= steps <= MAX_STEPS:
            raise BadRequest(f"field 'steps' must be an integer from 2 to {MAX_STEPS}, got {steps!r}")
        method = body.get("method", "linear")
        path = {"linear": latent.lerp, "spherical": latent.slerp}.get(method) if isinstance(method, str) else None
        if path is None:
            raise BadRequest(f"field 'method' must be 'linear' or 'spherical', got {method!r}")
        if "a" in body or "b" in body:
            z0, z1 = self.z[self.index(body.get("a"), "a")], self.z[self.index(body.get("b"), "b")]
        else:
            z0, z1 = self.codes(body.get("za"), "za")[0], self.codes(body.get("zb"), "zb")[0]
        z = path(z0, z1, steps)
        return {
            "z": z.tolist(),
            "xy": self.to_map(z).tolist(),
            "items": self.decode(z, body.get("format"), body.get("word")),
        }


# -- loading a run -------------------------------------------------------------------------------
def load_run(
    run_dir,
    data: str | None = None,
    split: str = "test",
    data_dir=None,
    max_points: int = MAX_POINTS,
    n_molecules: int = N_MOLECULES,
) -> Explorer:
    """An Explorer for a run directory: the model from its checkpoint, the data from config.json
    ("data": {"spec": ...}) unless `data` names another spec; a font run uses the fonts found on
    this machine (with their bold/italic/condensed/serif attributes); a chemvae run a seeded subset
    of `n_molecules` molecules of its spec's `split` (see `molecule_explorer`)."""
    from ..checkpoint import load_model
    from ..data import load
    from ..data.core import SplitError

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise VaekitError(f"{run_dir}: no such run directory")
    if not any((run_dir / f).is_file() for f in ("checkpoint.safetensors", "best.safetensors")):
        raise VaekitError(f"{run_dir}: no checkpoint.safetensors (train a model there with `vaekit fit`)")
    model = load_model(run_dir)
    cfg_file = run_dir / "config.json"
    try:
        saved = json.loads(cfg_file.read_text()).get("data") or {} if cfg_file.is_file() else {}
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        raise VaekitError(f"{cfg_file}: invalid JSON") from None
    if data_kind(model) == "font" and data is None and "spec" not in saved:
        from ..data.fonts import ATTRIBUTES, render_fonts

        fonts = render_fonts([data_dir] if data_dir else None, size=model.config.data_shape[-1])
        attrs = {a: fonts.attribute(a) for a in ATTRIBUTES}
        groups = {a: fonts.attribute_groups(a) for a in ATTRIBUTES if a != "serif"}
        return Explorer(
            model, fonts.images, attributes=attrs, attribute_groups=groups, name=run_dir.name, max_points=max_points
        )
    if data_kind(model) == "molecule":
        return molecule_explorer(
            model,
            data or saved.get("spec", "moses"),
            split,
            data_dir or saved.get("data_dir"),
            n=n_molecules,
            name=run_dir.name,
            max_points=max_points,
        )
    spec = data or saved.get("spec", "digits")
    try:
        ds = load(spec, split, data_dir or saved.get("data_dir"))
    except SplitError as e:  # a .npy file or an image folder holds one set of items: map those
        if split != "test" or "train" not in e.splits:
            raise
        ds = load(spec, "train", data_dir or saved.get("data_dir"))
    from ..data import Standardization

    st = saved.get("standardize")
    st = None if st is None else Standardization.from_json(st, tuple(model.config.data_shape), str(cfg_file))
    return Explorer(model, ds.x, ds.y, name=run_dir.name, max_points=max_points, standardization=st)


def molecule_explorer(
    model,
    spec: str = "moses",
    split: str = "test",
    data_dir=None,
    *,
    n: int = N_MOLECULES,
    seed: int = 0,
    name: str = "run",
    max_points: int = MAX_POINTS,
) -> Explorer:
    """An Explorer for a chemical VAE: a seeded subset of `n` scored molecules from `spec` (the MOSES
    test split by default; "zinc250k" or a CSV path too), without those that do not fit the model's
    vocabulary, coloured by logP."""
    from ..chem.dataset import scored

    mols = scored(spec, split, data_dir, limit=n, seed=seed)
    props = mols.props if model.config.properties else None
    x, kept = model.items(mols.smiles, props, skip=True)
    if not kept:
        raise VaekitError(f"none of the {len(mols)} molecules from {spec} ({split}) fit the model's vocabulary")
    return Explorer(
        model,
        x,
        name=name,
        max_points=max_points,
        seed=seed,
        values=mols.props[COLOUR_BY][kept],
        value_name=COLOUR_BY,
        smiles=[mols.smiles[i] for i in kept],
    )


# -- the web app ---------------------------------------------------------------------------------
def allowed_hosts(host: str = "127.0.0.1", port: int = 8765) -> frozenset[str]:
    """The Host header values a server bound to `host`:`port` answers to: 127.0.0.1, localhost, [::1]
    and `host` itself, each with the port (and without it too when the port is 80, which browsers
    leave out). A wildcard bind (0.0.0.0 or ::) adds this machine's name and addresses."""

    def bracket(h: str) -> str:
        h = h.strip().lower()
        return f"[{h}]" if ":" in h and not h.startswith("[") else h

    names = {*LOOPBACK, bracket(host)}
    if host in WILDCARD:
        try:
            me = socket.gethostname()
            names |= {bracket(n) for n in (me, socket.getfqdn(me), *socket.gethostbyname_ex(me)[2])}
        except OSError:  # no resolvable name: the loopback names only
            pass
    names.discard("")
    return frozenset({f"{n}:{port}" for n in names} | (names if port == 80 else set()))


class Guard:
    """ASGI middleware around the whole app: answers only requests whose Host is one of `hosts`
    (400 otherwise: DNS rebinding), refuses a request other than GET/HEAD whose Origin header is not
    the server's own (403: cross-site requests), and adds SECURITY_HEADERS to every answer."""

    def __init__(self, app, hosts):
        self.app = app
        self.hosts = frozenset(h.lower() for h in hosts)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        from starlette.datastructures import Headers, MutableHeaders
        from starlette.responses import JSONResponse, PlainTextResponse

        async def send_secured(message):
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for k, v in SECURITY_HEADERS.items():
                    headers[k] = v
            await send(message)

        headers = Headers(scope=scope)
        host = headers.get("host", "").lower()
        if host not in self.hosts:
            own = max(h for h in self.hosts if h.startswith("127.0.0.1"))  # with the port, if any
            refusal = PlainTextResponse(
                f"vaekit explore answers only to its own address: open http://{own}/\n", status_code=400
            )
            return await refusal(scope, receive, send_secured)
        origin = headers.get("origin")
        if scope["method"] not in ("GET", "HEAD") and origin is not None and origin.lower() != f"http://{host}":
            refusal = JSONResponse(
                {"error": f"cross-origin request refused: Origin must be http://{host}"}, status_code=403
            )
            return await refusal(scope, receive, send_secured)
        await self.app(scope, receive, send_secured)


def create_app(explorers: dict[str, Explorer] | Explorer, host: str = "127.0.0.1", port: int = 8765):
    """The page and the API for one or more runs (`"run": name` picks one), as an ASGI app for a server
    bound to `host`:`port`: it answers only to the names in `allowed_hosts(host, port)` (see `Guard`)."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Route

    if isinstance(explorers, Explorer):
        explorers = {explorers.name: explorers}
    default = next(iter(explorers))
    files = {p.name: p for p in STATIC.iterdir() if p.is_file()}  # the only files ever served

    def error(message: str, status: int = 400) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    def answer(data) -> Response:
        """Strict JSON (no NaN/Infinity): a result that holds a non-finite number is a 422, never a 500."""
        try:
            text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        except ValueError:
            return error(
                "the answer would hold numbers that are not finite (NaN or infinite); try values nearer the data", 422
            )
        return Response(text, media_type="application/json")

    def pick(run) -> Explorer:
        if run is None:
            return explorers[default]
        if not isinstance(run, str) or run not in explorers:
            raise BadRequest(f"unknown run {str(run)[:80]!r}; this server has {', '.join(explorers)}", 404)
        return explorers[run]

    async def read_json(request: Request) -> dict:
        size = request.headers.get("content-length")
        if size is not None and (not size.isdigit() or int(size) > MAX_BODY):
            raise BadRequest(f"request body too large (limit {MAX_BODY} bytes)", 413)
        chunks, total = [], 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > MAX_BODY:
                raise BadRequest(f"request body too large (limit {MAX_BODY} bytes)", 413)
            chunks.append(chunk)
        try:
            body = json.loads(b"".join(chunks), parse_constant=lambda c: float("nan"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise BadRequest(f"malformed JSON: {getattr(e, 'msg', 'not UTF-8 text')}") from None
        except RecursionError:
            raise BadRequest("malformed JSON: nested too deeply") from None
        except ValueError:  # Python's limit on integer digits (4300)
            raise BadRequest("malformed JSON: a number with too many digits") from None
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object")
        return body

    def endpoint(method_name: str):
        async def handle(request: Request) -> Response:
            kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind != "application/json":
                return error(
                    f"POST {request.url.path} needs Content-Type: application/json, got {kind[:60] or 'none'!r}", 415
                )
            try:
                body = await read_json(request)
                ex = pick(body.get("run"))
                return answer(await run_in_threadpool(getattr(ex, method_name), body))
            except BadRequest as e:
                return error(str(e), e.status)
            except VaekitError as e:
                return error(str(e), 400)

        return handle

    async def info(request: Request) -> Response:
        try:
            return answer(pick(request.query_params.get("run")).info())
        except BadRequest as e:
            return error(str(e), e.status)

    async def index(request: Request) -> Response:
        return FileResponse(files["index.html"])

    async def static(request: Request) -> Response:
        name = request.path_params["path"]
        path = files.get(name)
        if path is None or path.resolve().parent != STATIC:
            return error(f"no static file {name[:80]!r}", 404)
        return FileResponse(path)

    routes = [
        Route("/", index),
        Route("/api/info", info),
        Route("/api/encode", endpoint("api_encode"), methods=["POST"]),
        Route("/api/decode", endpoint("api_decode"), methods=["POST"]),
        Route("/api/interpolate", endpoint("api_interpolate"), methods=["POST"]),
        Route("/api/sample", endpoint("api_sample"), methods=["POST"]),
        Route("/static/{path:path}", static),
    ]
    return Guard(Starlette(routes=routes), allowed_hosts(host, port))


def serve(
    run_dirs,
    host: str = "127.0.0.1",
    port: int = 8765,
    open_browser: bool = True,
    data=None,
    data_dir=None,
    log_level: str = "warning",
) -> None:
    """Load the runs and serve the app until interrupted (Ctrl-C)."""
    try:
        import uvicorn
    except ImportError:
        raise VaekitError("vaekit explore needs starlette and uvicorn: pip install 'vaekit[explore]'") from None
    run_dirs = [run_dirs] if isinstance(run_dirs, (str, Path)) else list(run_dirs)
    explorers = {}
    for rd in run_dirs:
        ex = load_run(rd, data=data, data_dir=data_dir)
        explorers[ex.name if ex.name not in explorers else str(rd)] = ex
    app = create_app(explorers, host=host, port=port)
    name = "127.0.0.1" if host in WILDCARD else f"[{host}]" if ":" in host and not host.startswith("[") else host
    url = f"http://{name}:{port}/"
    print(f"vaekit explore: serving {', '.join(explorers)} at {url} (Ctrl-C to stop)")
    if open_browser:
        import webbrowser

        threading.Timer(1.0, lambda: webbrowser.open(url)).start()
    uvicorn.run(app, host=host, port=port, log_level=log_level)
