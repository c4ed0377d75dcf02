"""Molecule data, vocabularies and the chemical VAE (RDKit and selfies needed: the `chem` extra)."""

import gzip
import json
import math
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("rdkit", reason="the chemical VAE needs RDKit (pip install 'vaekit[chem]')")
pytest.importorskip("selfies", reason="the chemical VAE needs selfies (pip install 'vaekit[chem]')")

from vaekit import bounds  # noqa: E402
from vaekit.checkpoint import load_model, save  # noqa: E402
from vaekit.chem.dataset import chem_model, scored  # noqa: E402
from vaekit.chem.vocab import Vocab, kekule_smiles, smiles_tokens  # noqa: E402
from vaekit.data.smiles import read_csv  # noqa: E402
from vaekit.errors import VaekitError  # noqa: E402
from vaekit.train import TrainConfig, fit  # noqa: E402

MOLS = [
    "CCO",
    "c1ccccc1O",
    "CC(=O)Oc1ccccc1C(=O)O",
    "Cn1cnc2c1c(=O)n(C)c(=O)n2C",
    "ClC(Cl)Br",
    "C[C@H](N)C(=O)O",
    "O=C1CCCN1",
    "CC#N",
    "c1ccc2[nH]ccc2c1",
    "FC(F)(F)c1ccncc1",
]


def zinc_like(path, rows):
    """A file in ZINC250k's format: quoted SMILES with an embedded trailing newline, then logP, qed, SAS."""
    lines = ["smiles,logP,qed,SAS"] + [f'"{s}\n",{a},{b},{c}' for s, a, b, c in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_zinc250k_format_and_invalid_rows(tmp_path):
    f = zinc_like(tmp_path / "z.csv", [("CCO", -0.1, 0.4, 1.5), ("not_a_molecule", 1, 0.5, 2), ("OCC", 0.2, 0.4, 1.2)])
    mols = read_csv(f, properties=("logP", "qed", "SAS"))
    assert mols.smiles == ["CCO", "CCO"]  # canonical: OCC == CCO, trailing newline stripped
    assert mols.props["logP"].tolist() == [-0.1, 0.2]
    assert mols.invalid == [(3, "not_a_molecule")]  # counted with its file line, not dropped silently


def test_gzip_and_column_lookup(tmp_path):
    f = tmp_path / "m.csv.gz"
    f.write_bytes(gzip.compress(b"id,SMILES\n1,C1CC1\n2,c1ccccc1\n"))
    assert read_csv(f).smiles == ["C1CC1", "c1ccccc1"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("name,weight\na,1\n", "no SMILES column"),
        ("smiles\n", "column is empty"),
        ("", "file is empty"),
        ("smiles\nxx\nyy\n", "none of the 2 SMILES"),
    ],
)
def test_bad_csv_errors(tmp_path, text, message):
    f = tmp_path / "bad.csv"
    f.write_text(text)
    with pytest.raises(VaekitError, match=message):
        read_csv(f)


def test_missing_property_column_and_file(tmp_path):
    f = tmp_path / "m.csv"
    f.write_text("smiles,logP\nCCO,x\n")
    with pytest.raises(VaekitError, match="column 'QED' not in the header"):
        read_csv(f, properties=("QED",))
    with pytest.raises(VaekitError, match="line 2: column 'logP' is not a number"):
        read_csv(f, properties=("logP",))
    with pytest.raises(VaekitError, match="no such file"):
        read_csv(tmp_path / "nope.csv")


@pytest.mark.parametrize("kind", ["smiles", "kekule", "selfies"])
def test_vocab_round_trip(kind, tmp_path):
    from vaekit.chem.props import canonical

    vocab = Vocab.build(MOLS, kind)
    ids = vocab.encode(MOLS)
    assert ids.shape == (len(MOLS), vocab.max_len) and ids.dtype == torch.long
    assert [canonical(s) for s in vocab.decode(ids)] == [canonical(s) for s in MOLS]
    vocab.save(tmp_path / "v.json")
    again = Vocab.load(tmp_path / "v.json")
    assert again.tokens == vocab.tokens and again.max_len == vocab.max_len and again.kind == kind


def test_kekule_vocabulary_has_no_aromatic_atoms():
    vocab = Vocab.build(MOLS, "kekule")
    assert any(t.islower() for t in Vocab.build(MOLS, "smiles").tokens[3:])  # the test molecules have aromatic rings
    assert not any(t.islower() or t.startswith("[n") for t in vocab.tokens[3:])
    assert kekule_smiles("c1ccccc1O") == "OC1=CC=CC=C1"
    with pytest.raises(VaekitError, match=r"SMILES 'c1cccc1': RDKit cannot read it in Kekulé form"):
        vocab.encode(["c1cccc1"])  # a five-ring of aromatic carbons has no Kekulé form


def test_smiles_tokens_cover_the_string():
    assert smiles_tokens("C[C@H](Cl)Br") == ["C", "[C@H]", "(", "Cl", ")", "Br"]
    assert smiles_tokens("c1ccc%10cc1") == ["c", "1", "c", "c", "c", "%10", "c", "c", "1"]
    with pytest.raises(VaekitError, match="cannot tokenise the character 'X' at position 1"):
        smiles_tokens("CXC")


def test_vocab_errors_name_token_and_molecule():
    vocab = Vocab.build(["CCO", "CCN"], "smiles")
    with pytest.raises(VaekitError, match=r"molecule 'CCCl': token 'Cl' is not in the vocabulary"):
        vocab.encode(["CCCl"])
    with pytest.raises(VaekitError, match=r"molecule 'CCOCCO': 6 tokens, more than .* max_len - 1 = 3"):
        vocab.encode(["CCOCCO"])
    ids, kept = vocab.encode(["CCO", "CCCl", "CCN"], skip=True)
    assert kept == [0, 2] and ids.shape == (2, 4)
    with pytest.raises(VaekitError, match="must start with"):
        Vocab(["C", "<pad>", "<bos>", "<eos>"])


def small_model(kind="smiles", **cfg):
    from vaekit.chem.props import properties

    mols = read_csv_list(MOLS)
    mols.props.update(properties(mols.smiles))
    torch.manual_seed(0)
    model = chem_model(
        mols,
        kind,
        latent_dim=4,
        conv_channels=(4, 4),
        conv_kernels=(3, 3),
        dense=16,
        embed_dim=8,
        gru_hidden=16,
        gru_layers=1,
        prop_hidden=(8,),
        **cfg,
    )
    return model, mols


def read_csv_list(smiles):
    from vaekit.chem.props import canonical
    from vaekit.data.smiles import Molecules

    return Molecules([canonical(s) for s in smiles])


def test_teacher_forced_log_prob_matches_stepwise_decoding():
    model, mols = small_model()
    x = model.items(mols.smiles, mols.props)
    z = torch.randn(len(x), 4)
    lp = model.decode(z).log_prob(x)
    ids = x[:, : model.config.max_len].long()
    dec = model.decoder_net
    state, prev, manual = dec.initial_state(z), torch.full((len(x), 1), Vocab.bos), torch.zeros(len(x))
    syntax, depth, rings = model.vocab.syntax(), torch.zeros(len(x), dtype=torch.long), torch.zeros(len(x), 9) > 0
    for t in range(ids.shape[1]):  # one token at a time, feeding the true tokens
        logits, state = dec.step(z, prev, state)
        allowed = syntax.allowed(prev[:, 0], depth, rings[:, : syntax.ring.shape[1]])
        logp = torch.log_softmax(logits[:, -1].masked_fill(~allowed, float("-inf")), -1)
        live = ids[:, t] != Vocab.pad  # up to and including the end token
        manual += torch.where(live, logp.gather(1, ids[:, t : t + 1]).squeeze(1), torch.zeros(()))
        prev = ids[:, t : t + 1]
        for i, tok in enumerate(model.vocab.tokens[j] for j in ids[:, t].tolist()):  # the state, by hand
            depth[i] += {"(": 1, ")": -1}.get(tok, 0)
            if tok.isdigit():
                rings[i, int(tok) - 1] ^= True
    assert torch.isfinite(lp).all() and torch.allclose(lp, manual, atol=1e-4)
    # several z per item broadcast like every other decoder: (S, B, d) -> (S, B)
    assert model.decode(torch.randn(3, len(x), 4)).log_prob(x).shape == (3, len(x))


def test_loss_terms_and_bounds_work_on_the_chemical_vae():
    model, mols = small_model(warmup_steps=10)
    x = model.items(mols.smiles, mols.props)
    loss = model.loss(x, step=0)
    assert math.isfinite(float(loss.value.detach())) and {"elbo", "rec", "kl", "mse_logP", "mse_QED", "mse_SAS"} <= set(
        loss.terms
    )
    ll = bounds.log_likelihood(model, x, k=20)
    assert ll.shape == (len(x),) and bool((ll <= 0).all())
    # importance sampling sits above the ELBO on average
    assert float(ll.mean()) >= float(bounds.elbo(model, x, n_samples=20).terms["elbo"]) - 1.0


def test_items_need_properties_and_finite_values():
    model, mols = small_model()
    with pytest.raises(VaekitError, match="need the properties"):
        model.items(mols.smiles)
    bad = {k: v.copy() for k, v in mols.props.items()}
    bad["QED"][0] = np.nan
    with pytest.raises(VaekitError, match="NaN or inf"):
        model.items(mols.smiles, bad)


def test_training_learns_and_checkpoint_round_trips(tmp_path):
    model, mols = small_model()
    x = model.items(mols.smiles, mols.props)
    before = float(bounds.elbo(model, x).terms["rec"])
    fit(
        model,
        x,
        TrainConfig(epochs=150, batch_size=10, lr=1e-2, seed=0, progress=False, tensorboard=False),
        tmp_path / "run",
    )
    after = float(bounds.elbo(model, x).terms["rec"])
    assert after > before + 10  # reconstruction log-likelihood improved a lot
    again = load_model(tmp_path / "run")
    z = torch.randn(5, 4)
    assert again.decode_smiles(z, greedy=True) == model.eval().decode_smiles(z, greedy=True)
    assert again.vocab.tokens == model.vocab.tokens
    assert torch.allclose(again.predict_properties(z), model.predict_properties(z))


def test_predict_properties_with_gradients_in_natural_units():
    model, _ = small_model()
    model.eval()
    z = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    plain = model.predict_properties(z)
    assert not plain.requires_grad and plain.shape == (5, 3)
    with torch.no_grad():  # grad=True is differentiable even inside no_grad
        differentiable = model.predict_properties(z, grad=True)
    assert differentiable.requires_grad and torch.equal(differentiable.detach(), plain)
    std = torch.tensor(model.config.prop_std)
    standardised = model.property_head(z.detach().float())
    assert torch.allclose(plain, standardised * std + torch.tensor(model.config.prop_mean))
    (g,) = torch.autograd.grad(differentiable[:, 0].sum(), z)
    w = torch.func.jacrev(lambda c: model.property_head(c)[0, 0])(z[:1].detach().float())
    assert torch.allclose(g[:1].float(), w * std[0], atol=1e-6)  # the gradient of the natural-unit value


def test_encode_smiles_skips_molecules_outside_the_vocabulary():
    model, mols = small_model()
    model.eval()
    fits = mols.smiles[:3]
    z, kept = model.encode_smiles([fits[0], "C" * 500, fits[1], "[Xe]", fits[2]], skip=True)
    assert kept == [0, 2, 4] and torch.equal(z, model.encode_smiles(fits))
    z, kept = model.encode_smiles(["C" * 500], skip=True)
    assert z.shape == (0, 4) and kept == []
    with pytest.raises(VaekitError):
        model.encode_smiles(["C" * 500])


def test_pretrained_finds_the_committed_models():
    from vaekit.models import pretrained

    folder = pretrained("chemvae-selfies")
    assert (folder / "config.json").is_file() and folder.parent.name == "models"
    for name in ("no-such-model", "../models", ""):
        with pytest.raises(VaekitError, match=r"no pretrained model .* in .*models \(committed: .*chemvae-sm") as e:
            pretrained(name)
        assert "\n" not in str(e.value)


def test_selfies_samples_are_valid_molecules():
    from vaekit.chem.props import canonical

    model, _ = small_model("selfies")
    out = model.decode_smiles(torch.randn(50, 4), generator=torch.Generator().manual_seed(0))
    assert sum(canonical(s) is not None for s in out if s) == sum(1 for s in out if s)


def test_scored_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEKIT_CACHE", str(tmp_path / "cache"))
    f = zinc_like(tmp_path / "z.csv", [("CCO", 0, 0, 0), ("bad(", 0, 0, 0), ("c1ccccc1", 0, 0, 0)])
    a = scored(str(f), "file")
    assert a.smiles == ["CCO", "c1ccccc1"] and len(a.invalid) == 1 and set(a.props) >= {"logP", "QED", "SAS"}
    (entry,) = (tmp_path / "cache" / "molecules").glob("*.npz")
    assert {i.compress_type for i in zipfile.ZipFile(entry).infolist()} == {zipfile.ZIP_DEFLATED}
    b = scored(str(f), "file")
    assert b.smiles == a.smiles and np.allclose(b.props["QED"], a.props["QED"]) and b.invalid == a.invalid


def test_scored_cache_follows_the_content_not_the_timestamp(tmp_path, monkeypatch):
    import os

    monkeypatch.setenv("VAEKIT_CACHE", str(tmp_path / "cache"))
    f = zinc_like(tmp_path / "z.csv", [("CCO", 0, 0, 0), ("c1ccccc1", 0, 0, 0)])
    scored(str(f), "file")
    os.utime(f, ns=(0, 0))  # re-extracted: same bytes, another timestamp -> the same cache entry
    calls = []
    with monkeypatch.context() as m:  # scoring is not called again
        m.setattr("vaekit.chem.props.properties", lambda *a, **k: calls.append(1))
        assert scored(str(f), "file").smiles == ["CCO", "c1ccccc1"] and not calls
    zinc_like(f, [("CCO", 0, 0, 0), ("CCN", 0, 0, 0)])  # edited: computed again
    assert scored(str(f), "file").smiles == ["CCO", "CCN"]
    assert len(list((tmp_path / "cache" / "molecules").glob("*.npz"))) == 2


def test_unscored_gives_the_scored_molecules_without_scoring_them(tmp_path, monkeypatch):
    """Codes for an ex-post sampler need only the tokens: the molecules `scored` would give, from its cache
    when it is there, else read and canonicalised with no property computed (and nothing cached)."""
    from vaekit.chem.dataset import unscored

    monkeypatch.setenv("VAEKIT_CACHE", str(tmp_path / "cache"))
    f = zinc_like(tmp_path / "z.csv", [("OCC", 0, 0, 0), ("bad(", 0, 0, 0), ("c1ccccc1", 0, 0, 0)])
    with monkeypatch.context() as m:
        m.setattr("vaekit.chem.props.properties", lambda *a, **k: pytest.fail("scored the molecules"))
        cold = unscored(str(f), "file")
    assert cold.smiles == ["CCO", "c1ccccc1"] and len(cold.invalid) == 1 and not cold.props
    assert not (tmp_path / "cache" / "molecules").exists()
    want = scored(str(f), "file")
    warm = unscored(str(f), "file")  # now from the cache, properties included
    assert warm.smiles == want.smiles == cold.smiles and np.allclose(warm.props["QED"], want.props["QED"])


def test_a_scored_cache_is_read_without_rdkit(tmp_path, monkeypatch):
    """A cache scored on one machine serves another that lacks RDKit (a GPU machine, say)."""
    import subprocess
    import sys

    monkeypatch.setenv("VAEKIT_CACHE", str(tmp_path / "cache"))
    f = zinc_like(tmp_path / "z.csv", [("CCO", 0, 0, 0), ("c1ccccc1", 0, 0, 0)])
    want = scored(str(f), "file")
    code = (
        "import sys; sys.modules['rdkit'] = None\n"  # any import of RDKit fails
        "from vaekit.chem.dataset import scored\n"
        f"m = scored({str(f)!r}, 'file'); print(m.smiles, round(float(m.props['QED'][1]), 6))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"{want.smiles} {round(float(want.props['QED'][1]), 6)}"


def test_cli_fit_chemvae_on_a_csv(tmp_path, monkeypatch, capsys):
    from vaekit.cli import main

    monkeypatch.setenv("VAEKIT_CACHE", str(tmp_path / "cache"))
    f = tmp_path / "mine.csv"
    f.write_text("smiles\n" + "\n".join(MOLS + ["C1CC"]) + "\n")
    main(
        [
            "fit",
            str(tmp_path / "run"),
            "--model",
            "chemvae",
            "--data",
            str(f),
            "--kind",
            "selfies",
            "--latent-dim",
            "3",
            "--gru-hidden",
            "8",
            "--gru-layers",
            "1",
            "--epochs",
            "2",
            "--batch-size",
            "5",
            "--no-progress",
            "--no-tensorboard",
        ]
    )
    out = capsys.readouterr().out
    assert "1 SMILES are not valid molecules" in out and "line 12" in out
    model = load_model(tmp_path / "run")
    assert model.config.kind == "selfies" and model.config.latent_dim == 3


@pytest.mark.parametrize(
    "option, says",
    [
        ({"bo_seeds": "0"}, "option bo_seeds must be >= 1, got 0"),
        ({"bo_seeds": "two"}, "option bo_seeds must be int, got 'two'"),
        (
            {"bo_methods": "global,tpe"},
            r"option bo_methods: unknown \['tpe'\]; known: global, trust_region, trust_region_local",
        ),
    ],
)
def test_report_refuses_bad_bo_options_before_writing_anything(tmp_path, option, says):
    from vaekit.reports import run_report

    with pytest.raises(VaekitError, match=says):
        run_report("chemvae", out_dir=tmp_path / "out", quick=True, **option)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_quick_report_runs_end_to_end(tmp_path):
    from vaekit.reports import run_report

    if not (Path(os.environ.get("VAEKIT_DATA", "")) / "moses").is_dir():
        pytest.skip("MOSES splits not found (set VAEKIT_DATA)")
    smiles_model, _ = small_model("smiles")  # an untrained SMILES model: its prior row must appear
    (tmp_path / "smiles-run").mkdir()
    save(tmp_path / "smiles-run" / "checkpoint.safetensors", smiles_model)
    res = run_report("chemvae", out_root=tmp_path, quick=True, prior_runs=str(tmp_path / "smiles-run"), bo_seeds=2)
    metrics = {r.metric for r in res.rows}
    prior = [r for r in res.rows if r.data == "prior"]
    assert [r.note.split(";")[0].split()[0] for r in prior] == ["selfies", "smiles"]
    assert prior[1].paper == 0.7 and prior[1].met is None and 0 <= prior[1].ours <= 100
    assert {
        "valid",
        "FCD/Test",
        "SNN/Test",
        "Novelty",
        "reconstruction accuracy (10 encodings x 10 decodings)",
    } <= metrics
    assert (tmp_path / "chemvae" / "top_molecules.png").is_file() and (tmp_path / "chemvae" / "index.html").is_file()
    # the MOSES table once per code source: the prior (the protocol), then each ex-post sampler in rows of its own
    protocol = {r.metric for r in res.rows if r.data == "MOSES"}
    assert {"valid", "FCD/Test", "Novelty", "Filters", "logP", "SA", "QED", "weight"} <= protocol
    prior_fcd = next(r.ours for r in res.rows if r.data == "MOSES" and r.metric == "FCD/Test")
    for name in ("gmm", "twostage"):
        gain, *rows = [r for r in res.rows if r.data == f"MOSES, {name} sampler"]
        assert gain.metric.startswith("log density of held-out codes over the prior") and math.isfinite(gain.ours)
        assert {r.metric for r in rows} == protocol
        assert all(r.note.startswith("ex-post (not the MOSES protocol)") and r.paper is None for r in rows)
        assert 0 < next(r.ours for r in rows if r.metric == "valid") <= 1
        assert next(r.target for r in rows if r.metric == "FCD/Test") == f"< {prior_fcd:.3f} (the prior row)"
    # the diagnostic: reconstruction-distribution FCD beside the prior's at the same count
    diag = {r.metric.split(" (")[0]: r for r in res.rows if r.data == "diagnostic"}
    assert set(diag) == {"FCD/Test of the reconstruction distribution", "FCD/Test of prior samples"}
    assert all(math.isfinite(r.ours) and r.ours >= 0 for r in diag.values())
    assert f"{diag['FCD/Test of prior samples'].ours:.3f}" in diag["FCD/Test of the reconstruction distribution"].note
    # BO, global and in a trust region, repeated with two seeds: the best of any run, never below seed 0's own
    bo_rows = {r.metric: r for r in res.rows if r.metric.startswith("best penalized logP: BO")}
    names = ("BO (GP, qLogEI)", "BO, trust region (TuRBO-1)", "BO, trust region, GP fitted near the best code")
    assert set(bo_rows) == {f"best penalized logP: {n}{s}" for n in names for s in ("", ", best of 2 seeds")}
    for n in names:
        one, both = bo_rows[f"best penalized logP: {n}"], bo_rows[f"best penalized logP: {n}, best of 2 seeds"]
        assert both.ours >= one.ours and "best of each seed (from 0)" in both.note
    con = {r.metric.split(", ")[1].split(":")[0]: r for r in res.rows if r.metric.startswith("constrained")}
    assert list(con) == ["sim >= 0.0", "sim >= 0.2", "sim >= 0.4", "sim >= 0.6"]
    assert con["sim >= 0.4"].paper == 0.84 and all(r.ours >= 0 for r in con.values())
    # a looser similarity threshold can only find as much improvement or more
    assert con["sim >= 0.0"].ours >= con["sim >= 0.2"].ours >= con["sim >= 0.4"].ours >= con["sim >= 0.6"].ours


@pytest.mark.parametrize("kind", ["smiles", "kekule", "selfies"])
def test_grammar_mask_forbids_specials_and_empty_molecules(kind):
    vocab = Vocab.build(["CC(=O)Nc1ccc(O)cc1", "C1CC1Br", "N#Cc1ccccc1Cl"], kind)
    syntax = vocab.syntax()
    first, later = syntax.follows[Vocab.bos], syntax.follows[vocab.index["C"] if kind != "selfies" else 3]
    assert not syntax.follows[:, [Vocab.pad, Vocab.bos]].any() and later[Vocab.eos]
    assert not first[[Vocab.pad, Vocab.bos, Vocab.eos]].any()
    openers = {t for t, ok in zip(vocab.tokens, first) if ok}
    assert openers and all(
        ("Ring" not in t and "Branch" not in t) if kind == "selfies" else (t[0] == "[" or t[0].isalpha())
        for t in openers
    )
    assert later.sum() == len(vocab) - 2


def test_smiles_grammar_mask_closes_branches_and_rings():
    vocab = Vocab.build(["CC(=O)Nc1ccc(O)cc1", "C1CC2CC12Br", "N#Cc1ccccc1Cl"], "smiles")
    syntax = vocab.syntax()

    def ok_after(prefix: str) -> set[str]:
        prev = torch.tensor([[Vocab.bos] + [vocab.index[t] for t in smiles_tokens(prefix)]])
        depth, rings = syntax.state(prev)
        return {t for t, ok in zip(vocab.tokens, syntax.allowed(prev, depth, rings)[0, -1]) if ok}

    assert {"<eos>", "(", "1", "C"} <= ok_after("CC") and ")" not in ok_after("CC")
    assert ")" in ok_after("CC(C") and "<eos>" not in ok_after("CC(C")  # a branch open
    assert "<eos>" not in ok_after("C1CC") and "<eos>" in ok_after("C1CC1")  # a ring open, then closed
    assert "<eos>" not in ok_after("C1CC2CC1") and "<eos>" in ok_after("C1CC2CC12")
    assert ok_after("CC(") == {t for t in vocab.tokens if t[0].isalpha() or t in "=#-"}  # no empty branch
    assert ok_after("CC=") == {t for t in vocab.tokens if t[0].isalpha() or t.isdigit()}  # a bond needs an atom
    assert "1" not in ok_after("CC(C)")  # a ring label follows its atom
    syntax = vocab.syntax(strict=False)  # the ablation: specials out and an atom first, nothing else
    assert ok_after("CC(C") == ok_after("CC") == ok_after("C1CC") == set(vocab.tokens[2:])


def test_grammar_mask_lets_every_training_molecule_through():
    mols = small_model()[1].smiles + ["CC(C)(C)c1ccc2c(c1)C1(CC1)C(=O)N2", "O=C1NC(=O)C2(CCCC2)N1C1CC1", "C=1CC=1"]
    vocab = Vocab.build(mols, "smiles")
    syntax, ids = vocab.syntax(), vocab.encode(mols)
    prev = torch.cat([torch.full_like(ids[:, :1], Vocab.bos), ids[:, :-1]], 1)
    ok = syntax.allowed(prev, *syntax.state(prev)).gather(2, ids[..., None]).squeeze(2)
    assert bool((ok | (ids == Vocab.pad)).all())


def test_untrained_decoder_never_emits_specials_or_empty_molecules():
    model, _ = small_model()
    ids = model.sample(200, generator=torch.Generator().manual_seed(0))
    assert not (ids[:, 0] == Vocab.eos).any() and not (ids == Vocab.bos).any()
    ended = 0
    for row in ids.tolist():  # no padding before the end token
        body = row[: row.index(Vocab.eos)] if Vocab.eos in row else row
        assert Vocab.pad not in body
        if Vocab.eos in row:  # a molecule that ended has closed its branches and rings
            toks = [model.vocab.tokens[i] for i in body]
            ended += 1
            assert toks.count("(") == toks.count(")") and all(toks.count(d) % 2 == 0 for d in "123456789")
    assert ended > 50


def test_length_buckets_cover_every_molecule_once_and_skip_padding():
    from vaekit.train import epoch_batches

    model, mols = small_model()
    x = model.items(mols.smiles, mols.props)
    lengths = model.item_lengths(x)
    assert torch.equal(lengths, torch.tensor([len(model.vocab.tokenize(s)) + 1 for s in mols.smiles]))
    n = 1000
    fake = torch.randint(3, 60, (n,))
    batches = epoch_batches(n, 32, seed=3, epoch=1, lengths=fake, pool=8)
    assert sorted(torch.cat(batches).tolist()) == list(range(n))  # every item once
    again = epoch_batches(n, 32, seed=3, epoch=1, lengths=fake, pool=8)
    assert all(torch.equal(a, b) for a, b in zip(batches, again))  # seeded: a resume sees the same order
    spread = torch.tensor([float(fake[b].max() - fake[b].min()) for b in batches]).mean()
    random = torch.tensor([float(fake[b].max() - fake[b].min()) for b in epoch_batches(n, 32, 3, 1)]).mean()
    assert spread < random / 4  # buckets hold similar lengths
    # teacher forcing up to the batch's longest molecule gives the same log-likelihood as over all positions
    z = torch.randn(len(x), 4, generator=torch.Generator().manual_seed(0))
    p = model.decode(z)
    short = p.log_prob(x)
    model.decoder_net.skip_padding = False
    assert torch.allclose(short, p.log_prob(x), atol=1e-5)


def test_word_dropout_hides_previous_tokens_only_while_training():
    model, mols = small_model(word_dropout=0.5)
    x = model.items(mols.smiles, mols.props)
    ids, z = x[:, : model.config.max_len].long(), torch.randn(len(x), 4)
    dec = model.decoder_net.eval()
    assert torch.equal(dec.teacher_forced(z, ids), dec.teacher_forced(z, ids))  # evaluation sees every token
    plain = small_model()[0].decoder_net.eval()
    plain.load_state_dict(dec.state_dict())
    assert torch.allclose(plain.teacher_forced(z, ids), dec.teacher_forced(z, ids))
    dec.train()
    torch.manual_seed(1)
    a = dec.teacher_forced(z, ids)
    assert not torch.allclose(a, plain.teacher_forced(z, ids))
    # the first position is conditioned on the start token alone, which is never hidden
    assert torch.allclose(a[:, 0], plain.teacher_forced(z, ids)[:, 0])
    with pytest.raises(VaekitError, match="word_dropout must be in \\[0, 1\\), got 1.0"):
        small_model(word_dropout=1.0)


@pytest.mark.slow
def test_recipes_report_trains_each_recipe_once_and_reuses_it(tmp_path):
    from vaekit.reports import run_report

    if not (Path(os.environ.get("VAEKIT_DATA", "")) / "moses").is_dir():
        pytest.skip("MOSES splits not found (set VAEKIT_DATA)")
    opts = {"recipes": "base,wdrop", "minutes": "0.05", "samples": "50", "run_root": str(tmp_path / "runs")}
    first = run_report("chemrecipes", out_dir=tmp_path / "a", quick=True, **opts)
    assert [r.metric.split(": ")[1].split()[0] for r in first.rows] == ["base", "wdrop"]
    assert all(r.ours is not None and r.ours >= 0 and r.paper == 0.099 for r in first.rows)
    assert (tmp_path / "a" / "recipes.png").is_file()
    again = run_report("chemrecipes", out_dir=tmp_path / "b", quick=True, **opts)  # reads the runs and their scores
    assert [r.ours for r in again.rows] == [r.ours for r in first.rows]
    with pytest.raises(VaekitError, match="recipes must be among"):
        run_report("chemrecipes", out_dir=tmp_path / "c", quick=True, recipes="base,nope")


def test_committed_smiles_model_draws_mostly_valid_molecules():
    from vaekit.chem.props import canonical
    from vaekit.models import pretrained

    model = load_model(pretrained("chemvae-smiles")).eval()
    assert model.config.kind == "smiles"
    out = model.decode_smiles(torch.randn(300, model.config.latent_dim, generator=torch.Generator().manual_seed(0)))
    valid = [s for s in out if s and canonical(s) is not None]
    assert len(valid) >= 0.8 * len(out)  # 90 % of 10,000 prior samples parse (training.json)


def test_committed_gpu_model_is_the_moses_size_and_draws_valid_molecules():
    """models/chemvae-gpu (bench/gpu/train_chemvae.sh on a GPU) is shipped without optimizer state and runs on CPU."""
    from vaekit.chem.props import canonical
    from vaekit.models import pretrained

    model = load_model(pretrained("chemvae-gpu")).eval()
    assert (model.config.latent_dim, model.config.gru_hidden, model.config.gru_layers) == (128, 512, 3)
    out = model.decode_smiles(torch.randn(100, 128, generator=torch.Generator().manual_seed(0)))
    valid = [s for s in out if s and canonical(s) is not None]
    assert len(valid) >= 0.9 * len(out)  # 98.2 % of 30,000 prior samples parse (training.json)


def test_report_curve_rows_read_the_committed_fcd_curves(tmp_path):
    """With --pretrained the report gives the FCD-against-CPU-minutes points of bench/results as rows (each
    saying by how much it misses the target) and a figure."""
    from vaekit.models.pretrained import ROOT
    from vaekit.reports import Context
    from vaekit.reports.chemvae import CURVES, _curve_rows

    files = [ROOT.parent / "bench" / "results" / f"{n}.json" for n in CURVES]
    if not any(f.is_file() for f in files):
        pytest.skip("no committed FCD curve")
    ctx = Context("chemvae", tmp_path)
    _curve_rows(ctx, 3.0)
    points = [p for f in files if f.is_file() for p in json.loads(f.read_text())["points"]]
    assert sorted(r.ours for r in ctx.rows) == sorted(p["FCD/Test"] for p in points)
    for r in ctx.rows:
        assert r.met == (r.ours <= 1.0) and ("missed by" in r.note) == (r.ours > 1.0)
    assert (tmp_path / "fcd_curve.png").stat().st_size > 1000
