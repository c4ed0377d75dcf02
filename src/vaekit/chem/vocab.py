"""Token vocabularies for molecules: regex-tokenised SMILES, Kekulé SMILES or SELFIES (Krenn et al. 2020).

A molecule becomes a row of `max_len` token ids: its tokens, one end token, then padding.

    vocab = Vocab.build(smiles, kind="selfies")
    ids = vocab.encode(smiles)            # LongTensor (n, max_len)
    back = vocab.decode(ids)              # SMILES strings (SELFIES are decoded to SMILES)
    vocab.save("vocab.json"); Vocab.load("vocab.json")

SELFIES strings always decode to a valid molecule, which is why a SELFIES VAE's prior samples
are valid by construction; SMILES keep the chemical VAE paper's original representation.  Kekulé
SMILES ("kekule") write every aromatic ring with explicit single and double bonds (RDKit's canonical
Kekulé form, no lowercase atoms): a decoder then never has to get an aromatic ring's size and
electrons right for RDKit to read it (a ring that cannot be kekulized is a common reason a sampled
SMILES is invalid), at the price of longer strings.  Both SMILES kinds decode to a string RDKit reads as is.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ..errors import VaekitError
from ..io import atomic_write_text, cached, load_npz, save_npz

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
SPECIALS = (PAD, BOS, EOS)
KINDS = ("smiles", "kekule", "selfies")

# One SMILES token: a bracket atom, a two-letter organic-subset atom, a one-letter (or aromatic) atom,
# a bond, a branch, a ring-closure label (one digit or %nn), a dot, or a reaction/wildcard symbol.
SMILES_TOKEN = re.compile(r"\[[^\[\]]+\]|Br|Cl|%\d\d|[BCNOPSFIbcnops]|[=#$:/\\\-+()\.~*@?>\d]")
RING_LABEL = re.compile(r"%\d\d|\d")
SMILES_BONDS = frozenset("-=#$:/\\")


@dataclass(frozen=True)
class Syntax:
    """A SMILES grammar a decoder can follow token by token, as tensors over a vocabulary of V tokens.

    A token may be emitted if it may follow the previous token (`follows`, V x V; the start token's
    row says which tokens open a molecule), a closing parenthesis only inside a branch, and the end token
    only once every branch and ring is closed.  `depth` is each token's change of branch depth (+1, -1
    or 0) and `ring` (V x R) marks the R ring-closure labels, so the state after a prefix is a running
    sum: the branch depth and which labels are open.  Every string the mask lets through has balanced
    branches and closed rings; RDKit may still refuse it (an aromatic ring it cannot kekulize, a valence).
    SELFIES need no such state: their `follows` only keeps specials out, and R is 0."""

    follows: torch.Tensor  # (V, V) bool: token j may follow token i
    depth: torch.Tensor  # (V,) long
    ring: torch.Tensor  # (V, R) long, one-hot
    eos: int
    close: int | None  # the ")" token, if the vocabulary has one

    def to(self, device: torch.device | str) -> Syntax:
        return replace(self, follows=self.follows.to(device), depth=self.depth.to(device), ring=self.ring.to(device))

    def state(self, prev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Branch depth (N, T) and open ring labels (N, T, R) after each prefix, from the token ids
        `prev` (N, T) of the prefixes up to each position (teacher forcing): running sums along T."""
        return self.depth[prev].cumsum(-1), self.ring[prev].cumsum(-2) % 2 > 0

    def advance(
        self, depth: torch.Tensor, rings: torch.Tensor, token: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The state (depth (N,), open rings (N, R)) after one more token (N,): decoding's running sums."""
        return depth + self.depth[token], rings ^ (self.ring[token] > 0)

    def allowed(self, prev: torch.Tensor, depth: torch.Tensor, rings: torch.Tensor) -> torch.Tensor:
        """Bool mask (..., V) of the tokens that may come next, given the previous token (...,), the
        branch depth (...,) and the open ring labels (..., R)."""
        ok = self.follows[prev]
        if self.close is not None:
            ok[..., self.close] &= depth > 0
        ok[..., self.eos] &= (depth == 0) & ~rings.any(-1)
        return ok


def smiles_tokens(smiles: str) -> list[str]:
    tokens = SMILES_TOKEN.findall(smiles)
    if "".join(tokens) != smiles:
        at = 0
        for t in tokens:  # find the first character no token covers, for the message
            if smiles.startswith(t, at):
                at += len(t)
            else:
                break
        raise VaekitError(f"SMILES {smiles!r}: cannot tokenise the character {smiles[at]!r} at position {at}")
    return tokens


def _selfies():
    try:
        import selfies
    except ImportError as e:
        raise VaekitError(f"SELFIES need the selfies package: pip install 'vaekit[chem]' ({e})") from None
    return selfies


@lru_cache(maxsize=2**18)
def _selfies_tokens(smiles: str) -> tuple[str, ...]:
    """SELFIES tokens of a SMILES string (cached: translation costs milliseconds, and building a vocabulary
    then encoding the same molecules would translate each twice)."""
    sf = _selfies()
    try:
        return tuple(sf.split_selfies(sf.encoder(smiles)))
    except Exception as e:  # selfies.EncoderError and friends
        raise VaekitError(f"SMILES {smiles!r}: cannot translate to SELFIES ({e})") from None


@lru_cache(maxsize=2**21)
def kekule_smiles(smiles: str) -> str:
    """RDKit's canonical SMILES of a molecule in Kekulé form: aromatic rings as alternating single and
    double bonds, no aromatic (lowercase) atoms."""
    from .props import Chem  # RDKit, with its per-molecule error lines silenced

    mol = Chem.MolFromSmiles(smiles)
    if mol is not None:
        try:
            Chem.Kekulize(mol, clearAromaticFlags=True)
        except Exception:  # RDKit's KekulizeException
            mol = None
    if mol is None:
        raise VaekitError(f"SMILES {smiles!r}: RDKit cannot read it in Kekulé form")
    return Chem.MolToSmiles(mol, kekuleSmiles=True)


_TRANSLATED: dict[str, tuple[str, ...]] = {}  # SMILES -> SELFIES tokens, filled by translate_selfies
MANY = 10_000  # molecules from which Vocab.build and encode translate (and cache) a whole list at once


def translate_selfies(smiles: Sequence[str], *, cache: bool = True) -> int:
    """Translate a list of molecules to SELFIES once, so that tokenising them again costs nothing.

    The translations are kept in memory for this process and, with `cache`, on disk under
    `$VAEKIT_CACHE/chem` (default ~/.cache/vaekit/chem), keyed by a digest of the list and the selfies
    version: 5,000 MOSES molecules take 2.1 CPU-s to translate and 0.06 CPU-s to read back.
    Molecules SELFIES cannot translate are left out (tokenising one raises the usual error).  Returns how
    many were translated."""
    from ..data.core import cache_root

    sf = _selfies()
    todo = [s for s in dict.fromkeys(smiles) if s not in _TRANSLATED]
    if not todo:
        return 0
    digest = hashlib.sha256("\n".join(todo).encode()).hexdigest()[:20]
    path = cache_root() / "chem" / f"selfies-{sf.__version__}-{digest}.npz"

    def translate() -> dict:
        out = []
        for s in todo:
            try:
                out.append(" ".join(_selfies_tokens(s)))
            except VaekitError:
                out.append("")
        return {"selfies": np.array(out, dtype=str), "n": np.array(len(todo))}

    def load(p: Path) -> dict:
        z = load_npz(p, ["selfies", "n"])
        if int(z["n"]) != len(todo) or len(z["selfies"]) != len(todo):
            raise ValueError("translations of another list")
        return z

    z = cached(path, translate, lambda p, v: save_npz(p, v, compressed=True), load, use=cache)
    for s, t in zip(todo, z["selfies"].tolist()):
        if t:
            _TRANSLATED[s] = tuple(t.split(" "))
    return len(todo)


@dataclass
class Vocab:
    tokens: list[str]  # index -> token; the first three are <pad>, <bos>, <eos>
    kind: str = "smiles"  # one of KINDS
    max_len: int = 120  # tokens per row, including the end token

    def __post_init__(self):
        if self.kind not in KINDS:
            raise VaekitError(f"vocabulary kind must be one of {KINDS}, got {self.kind!r}")
        if tuple(self.tokens[:3]) != SPECIALS or len(set(self.tokens)) != len(self.tokens):
            raise VaekitError(f"vocabulary tokens must start with {SPECIALS} and be unique")
        self.index = {t: i for i, t in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    pad, bos, eos = 0, 1, 2

    def syntax(self, strict: bool = True) -> Syntax:
        """The decoder's grammar mask (see `Syntax`): which token may follow which, and the tokens that
        open or close a branch or a ring.  strict=False keeps only what the mask was before SMILES
        branches and rings were followed (an ablation): no specials, and an atom first."""
        n = len(self.tokens)
        follows = torch.ones(n, n, dtype=torch.bool)
        follows[:, [self.pad, self.bos]] = False  # never emitted
        first = follows[self.bos]
        first[self.eos] = False
        depth = torch.zeros(n, dtype=torch.long)
        smiles = self.kind != "selfies" and strict
        rings = [i for i, t in enumerate(self.tokens) if smiles and RING_LABEL.fullmatch(t)]
        ring = torch.zeros(n, len(rings), dtype=torch.long)
        ring[rings, torch.arange(len(rings))] = 1
        if self.kind == "selfies":
            # any token but ring, branch, no-op and dot tokens, which derive nothing at the start
            first &= torch.tensor(
                [not any(k in t for k in ("Ring", "Branch", "nop")) and t not in (".", "[.]") for t in self.tokens]
            )
            return Syntax(follows, depth, ring, self.eos, None)
        atom = torch.tensor([t[0] == "[" or t[0].isalpha() for t in self.tokens])
        atom[list(range(len(SPECIALS)))] = False
        if not strict:
            first &= atom
            return Syntax(follows, depth, ring, self.eos, None)
        bond, is_ring = torch.tensor([t in SMILES_BONDS for t in self.tokens]), ring.sum(1) > 0
        close = self.index.get(")")
        for i, t in enumerate(self.tokens):
            if i == self.bos or t == ".":
                follows[i] &= atom  # a molecule or a fragment starts with an atom
            elif t in SMILES_BONDS:
                follows[i] &= atom | is_ring  # a bond joins two atoms (or an atom and a ring closure)
            elif t == "(":
                follows[i] &= atom | bond  # a branch is not empty
            elif t == ")":
                follows[i] &= ~is_ring  # a ring-closure label follows its atom directly
        for t, change in (("(", 1), (")", -1)):
            if t in self.index:
                depth[self.index[t]] = change
        return Syntax(follows, depth, ring, self.eos, close)

    # -- strings <-> tokens ------------------------------------------------------------------
    def tokenize(self, smiles: str) -> list[str]:
        """The tokens of one molecule given as SMILES (SELFIES vocabularies translate it first)."""
        if self.kind == "smiles":
            return smiles_tokens(smiles)
        if self.kind == "kekule":
            return smiles_tokens(kekule_smiles(smiles))
        known = _TRANSLATED.get(smiles)
        return list(known if known is not None else _selfies_tokens(smiles))

    @classmethod
    def build(cls, smiles, kind: str = "smiles", max_len: int | None = None) -> Vocab:
        """Every token seen in `smiles`; max_len = longest molecule + 1 unless given."""
        probe = cls(list(SPECIALS), kind)
        if kind == "selfies" and isinstance(smiles, Sequence) and len(smiles) >= MANY:
            translate_selfies(smiles)
        seen: dict[str, None] = {}  # first-seen order, no duplicates
        longest = 0
        for s in smiles:
            toks = probe.tokenize(s)
            longest = max(longest, len(toks))
            for t in toks:
                seen.setdefault(t, None)
        return cls(list(SPECIALS) + sorted(seen), kind, max_len or longest + 1)

    def encode(self, smiles, *, skip: bool = False):
        """Token ids (n, max_len).  With skip=True, molecules that do not fit (too long, unknown token)
        are left out and `(ids, kept_indices)` is returned; otherwise they raise a VaekitError."""
        if self.kind == "selfies" and isinstance(smiles, Sequence) and len(smiles) >= MANY:
            translate_selfies(smiles)
        rows, kept = [], []
        for i, s in enumerate(smiles):
            try:
                rows.append(self._ids(s))
                kept.append(i)
            except VaekitError:
                if not skip:
                    raise
        ids = torch.tensor(rows, dtype=torch.long).reshape(len(rows), self.max_len)
        return (ids, kept) if skip else ids

    def _ids(self, smiles: str) -> list[int]:
        toks = self.tokenize(smiles)
        if len(toks) + 1 > self.max_len:
            raise VaekitError(
                f"molecule {smiles!r}: {len(toks)} tokens, more than the vocabulary's max_len - 1 = {self.max_len - 1}"
            )
        try:
            ids = [self.index[t] for t in toks]
        except KeyError as e:
            raise VaekitError(f"molecule {smiles!r}: token {e.args[0]!r} is not in the vocabulary") from None
        return ids + [self.eos] + [self.pad] * (self.max_len - len(ids) - 1)

    def decode(self, ids) -> list[str]:
        """SMILES strings from token ids (n, L): everything before the first end token, specials dropped.
        SELFIES rows are decoded to SMILES; an undecodable row gives ""."""
        out = []
        for row in torch.as_tensor(ids).tolist():
            toks = []
            for i in row:
                if i == self.eos:
                    break
                if i >= len(self.tokens) or i < len(SPECIALS):
                    continue
                toks.append(self.tokens[i])
            out.append(self._from_selfies("".join(toks)) if self.kind == "selfies" else "".join(toks))
        return out

    @staticmethod
    def _from_selfies(s: str) -> str:
        try:
            return _selfies().decoder(s) or ""
        except Exception:
            return ""

    # -- files -------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"kind": self.kind, "max_len": self.max_len, "tokens": self.tokens}

    @classmethod
    def from_dict(cls, d: dict, where: str = "vocabulary") -> Vocab:
        try:
            return cls(list(d["tokens"]), str(d["kind"]), int(d["max_len"]))
        except (KeyError, TypeError, ValueError) as e:
            raise VaekitError(f"{where}: not a vocabulary (missing or bad field {e})") from None

    def save(self, path) -> None:
        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path) -> Vocab:
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise VaekitError(f"{path}: cannot read the vocabulary ({e})") from None
        return cls.from_dict(d, str(path))
