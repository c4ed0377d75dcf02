"""SELFIES translations of a list of molecules are cached on disk and read back instead of translated again."""

import pytest

pytest.importorskip("selfies")

from vaekit.chem import vocab as V  # noqa: E402

SMILES = ["CCO", "c1ccccc1", "CC(=O)Nc1ccc(O)cc1", "C1CCNCC1", "OC(=O)c1ccccc1O"]


def test_translations_are_cached_and_read_back(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEKIT_CACHE", str(tmp_path))
    monkeypatch.setattr(V, "_TRANSLATED", {})
    V._selfies_tokens.cache_clear()
    assert V.translate_selfies(SMILES) == len(SMILES)
    files = list((tmp_path / "chem").glob("selfies-*.npz"))
    assert len(files) == 1
    want = V.Vocab.build(SMILES, "selfies").encode(SMILES)
    # a new process: nothing in memory, and translating would fail; the cache file answers instead
    monkeypatch.setattr(V, "_TRANSLATED", {})
    V._selfies_tokens.cache_clear()

    def refuse(s):
        raise AssertionError("translated again")

    monkeypatch.setattr(V, "_selfies_tokens", refuse)
    assert V.translate_selfies(SMILES) == len(SMILES)
    assert V.translate_selfies(SMILES) == 0  # already in memory
    assert (V.Vocab.build(SMILES, "selfies").encode(SMILES) == want).all()


def test_a_corrupt_cache_file_is_translated_again(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEKIT_CACHE", str(tmp_path))
    monkeypatch.setattr(V, "_TRANSLATED", {})
    V.translate_selfies(SMILES[:3])
    (f,) = (tmp_path / "chem").glob("selfies-*.npz")
    f.write_bytes(b"not an npz file")
    monkeypatch.setattr(V, "_TRANSLATED", {})
    assert V.translate_selfies(SMILES[:3]) == 3
    assert V._TRANSLATED["CCO"] == V._selfies_tokens("CCO")
    assert f.read_bytes()[:2] == b"PK"  # rewritten as a zip archive


def test_untranslatable_molecules_still_raise(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEKIT_CACHE", str(tmp_path))
    monkeypatch.setattr(V, "_TRANSLATED", {})
    V.translate_selfies(["CCO", "C(C)(C)(C)(C)C"])  # a five-valent carbon: SELFIES refuses it
    assert "C(C)(C)(C)(C)C" not in V._TRANSLATED
    with pytest.raises(V.VaekitError, match="cannot translate"):
        V.Vocab(list(V.SPECIALS), "selfies").tokenize("C(C)(C)(C)(C)C")
