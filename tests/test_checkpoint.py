"""Checkpoints: round trip, corruption detection, atomic writes."""
import pytest
import torch

import vaekit
from vaekit import checkpoint
from vaekit.errors import VaekitError


def model():
    torch.manual_seed(0)
    return vaekit.build("iwae", data_shape=(10,), latent_dim=3, hidden=(16,), k=3)


def test_round_trip_with_optimizer_and_rng(tmp_path):
    m = model()
    opt = torch.optim.Adam(m.parameters())
    m.loss(torch.rand(4, 10)).value.backward()
    opt.step()
    checkpoint.save(tmp_path / "c.safetensors", m, opt, step=7)
    rng_after_save = torch.rand(3)
    m2 = model()
    torch.nn.init.zeros_(m2.encoder.head.weight)
    opt2 = torch.optim.Adam(m2.parameters())
    meta = checkpoint.restore(tmp_path / "c.safetensors", m2, opt2, rng=True)
    assert meta == {"step": 7}
    assert torch.equal(torch.rand(3), rng_after_save)
    for a, b in zip(m.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)
    s1, s2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert all(torch.equal(s1[i]["exp_avg"], s2[i]["exp_avg"]) for i in s1)
    loaded = checkpoint.load_model(tmp_path / "c.safetensors")
    assert type(loaded).__name__ == "IWAE" and loaded.config.k == 3


def test_truncated_checkpoint_names_the_file(tmp_path):
    path = tmp_path / "c.safetensors"
    checkpoint.save(path, model())
    path.write_bytes(path.read_bytes()[:-50])
    with pytest.raises(VaekitError, match="c.safetensors: corrupt or truncated"):
        checkpoint.load_model(path)


def test_bit_flip_is_detected(tmp_path):
    path = tmp_path / "c.safetensors"
    checkpoint.save(path, model())
    raw = bytearray(path.read_bytes())
    raw[-10] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(VaekitError, match="checksum mismatch"):
        checkpoint.load_model(path)


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "x.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(VaekitError, match="x.safetensors"):
        checkpoint.load_model(tmp_path / "x.safetensors")
    with pytest.raises(VaekitError, match="no checkpoint"):
        checkpoint.load_model(tmp_path / "missing.safetensors")


def test_failed_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "c.safetensors"
    m = model()
    checkpoint.save(path, m, step=1)

    def boom(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "save_file", boom)
    with pytest.raises(OSError):
        checkpoint.save(path, m, step=2)
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]        # no temp file left behind
    assert checkpoint.read(path)[1]["meta"]["step"] == 1


def test_different_model_is_refused(tmp_path):
    checkpoint.save(tmp_path / "c.safetensors", model())
    other = vaekit.build("vae", data_shape=(10,), latent_dim=3, hidden=(16,))
    with pytest.raises(VaekitError, match="different model"):
        checkpoint.restore(tmp_path / "c.safetensors", other)
