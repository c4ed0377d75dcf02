"""The structural filters the MOSES data set was built with, and its metric "Filters".

MOSES (Polykovskiy et al. 2020, "Molecular Sets (MOSES)", section "Dataset") kept from ZINC's Clean Leads only
molecules that
- hold no atom but C, N, S, O, F, Cl, Br and H, and no charged atom;
- have no ring of 8 or more atoms;
- match none of the medicinal-chemistry filters (MCF, below) and none of the PAINS alerts (Baell & Holloway
  2010, "New substructure filters for removal of pan assay interference compounds").

Every training and test molecule passes, so the fraction of generated molecules that pass (the MOSES metric
"Filters") says how many of them a medicinal chemist would not throw out at once for a reactive or
assay-interfering group.  The PAINS alerts are RDKit's own catalogue of them (`rdkit.Chem.FilterCatalog`, 480
alerts); the 22 MCF patterns are those of the MOSES reference code (molsets 0.3.1, MIT licence), written out
below with what each flags.  Patterns are matched on the molecule with its hydrogens explicit, as MOSES does
(some name hydrogens).  `bench/vs_moses_vae.py` checks the fraction against MOSES's own code, and
`bench/vs_moses_filters.py` the verdicts molecule by molecule: RDKit edited some PAINS definitions, and its
thiaz_ene_A flags a few 2-imino-thiazolines that the original MOSES used lets through (4 of 30,000 MOSES
training molecules).
"""

from __future__ import annotations

from functools import lru_cache

from rdkit import Chem
from rdkit.Chem import FilterCatalog

from .props import mol as _mol

ATOMS = frozenset({"C", "N", "S", "O", "F", "Cl", "Br", "H"})  # elements a MOSES molecule may hold
MAX_RING = 7  # atoms in its largest ring

# (what it flags, SMARTS)
MCF = (
    ("alpha,beta-unsaturated nitrile (Michael acceptor)", "[#6]=&!@[#6]-[#6]#[#7]"),
    ("vinyl sulfone (Michael acceptor)", "[#6]=&!@[#6]-[#16](=[#8])=[#8]"),
    ("acrylamide (Michael acceptor)", "[#6]=&!@[#6&!H0]-&!@[#6](=[#8])-&!@[#7]"),
    ("primary alkyl halide", "[H]C([H])([#6])[F,Cl,Br,I]"),
    ("epoxide", "[#6]1-[#8]-[#6]-1"),
    ("isocyanate", "[#6]-[#7]=[#6]=[#8]"),
    ("formyl group (aldehyde, formamide, formate)", "[#6&!H0]=[#8]"),
    ("acyclic N-H imine or amidine", "[#6](=&!@[#7&!H0])-&!@[#6,#7,#8,#16]"),
    ("aziridine", "[#6]1-[#7]-[#6]-1"),
    ("acyclic N-N chain between carbons (azo, hydrazine)", "[#6]~&!@[#7]~&!@[#7]~&!@[#6]"),
    ("acyclic N=N", "[#7]=&!@[#7]"),
    (
        "furan-like five-ring C=C-C=C(R)-O in single and double bonds (not aromatic)",
        "[H][#6]-1=[#6]([H])-[#6]=[#6](-*)-[#8]-1",
    ),
    ("the same five-ring with S (thiophene-like, not aromatic)", "[H][#6]-1=[#6]([H])-[#6]=[#6](-*)-[#16]-1"),
    ("halogen on an aromatic carbon beside a ring heteroatom", "[#17,#35,#53]-c(:*):[!#1!#6]:*"),
    (
        "NH2 on a six-ring of alternating single and double bonds (not aromatic)",
        "[H][#7]([H])-[#6]-1=[#6]-[#6]=[#6]-[#6]=[#6]-1",
    ),
    ("S-S bond", "[#16]~[#16]"),
    ("acyclic chain of three nitrogens (triazene, azide)", "[#7]~&!@[#7]~&!@[#7]"),
    ("aminal on a CH2 (N-CH2-N, acyclic)", "[#7]-&!@[#6&!H0&!H1]-&!@[#7]"),
    ("acetal or hemiacetal carbon (acyclic O-CH-O)", "[#6&!H0](-&!@[#8])-&!@[#8]"),
    ("three or more bromines", "[#35].[#35].[#35]"),
    ("four or more chlorines", "[#17].[#17].[#17].[#17]"),
    ("seven or more fluorines", "[#9].[#9].[#9].[#9].[#9].[#9].[#9]"),
)


@lru_cache(maxsize=1)
def _patterns() -> tuple:
    """The MCF patterns, parsed once a process."""
    pats = tuple(Chem.MolFromSmarts(s) for _, s in MCF)
    assert all(p is not None for p in pats), "an MCF SMARTS does not parse"
    return pats


@lru_cache(maxsize=1)
def _pains():
    params = FilterCatalog.FilterCatalogParams()
    params.AddCatalog(FilterCatalog.FilterCatalogParams.FilterCatalogs.PAINS)
    return FilterCatalog.FilterCatalog(params)


def failed(m) -> str | None:
    """Why the RDKit molecule `m` fails MOSES's filters (a short reason), or None when it passes."""
    if any(len(ring) > MAX_RING for ring in m.GetRingInfo().AtomRings()):
        return f"a ring of more than {MAX_RING} atoms"
    for atom in m.GetAtoms():
        if atom.GetFormalCharge():
            return "a charged atom"
        if atom.GetSymbol() not in ATOMS:
            return f"element {atom.GetSymbol()}"
    h = Chem.AddHs(m)
    for (what, _), pattern in zip(MCF, _patterns()):
        if h.HasSubstructMatch(pattern):
            return f"MCF: {what}"
    alert = _pains().GetFirstMatch(h)
    if alert is not None:
        return f"PAINS: {alert.GetDescription()}"
    return None


def passes(smiles: str) -> bool:
    """Whether `smiles` is a molecule that passes MOSES's filters (an invalid string does not)."""
    m = _mol(smiles)
    return m is not None and failed(m) is None
