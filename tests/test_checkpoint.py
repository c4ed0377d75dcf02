"""Checkpoints: round trip, corruption detection, atomic writes, crafted headers refused before allocating."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import vaekit
from vaekit import checkpoint
from vaekit.errors import VaekitError


def model():
    torch.manual_seed(0)
    return vaekit.build("iwae", data_shape=(10,), latent_dim=3, hidden=(16,), k=3)


def saved_after_a_step(path):
    """A model and its Adam optimizer after one step, saved to `path` with step=7 in the meta."""
    m = model()
    opt = torch.optim.Adam(m.parameters())
    m.loss(torch.rand(4, 10)).value.backward()
    opt.step()
    checkpoint.save(path, m, opt, step=7)
    return m, opt


def test_round_trip_with_optimizer_and_rng(tmp_path):
    m, opt = saved_after_a_step(tmp_path / "c.safetensors")
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


def test_weights_only_copy_drops_the_optimizer_state_and_keeps_the_model(tmp_path):
    m, _ = saved_after_a_step(tmp_path / "full.safetensors")
    checkpoint.weights_only(tmp_path / "full.safetensors", tmp_path / "w.safetensors")
    tensors, header = checkpoint.read(tmp_path / "w.safetensors")  # verified: its checksum is rewritten
    assert not any(k.startswith("optim.") for k in tensors) and header["optimizer_groups"] is None
    assert header["meta"] == {"step": 7}
    full, _ = checkpoint.read(tmp_path / "full.safetensors")
    assert tensors.keys() == {k for k in full if not k.startswith("optim.")}
    loaded = checkpoint.load_model(tmp_path / "w.safetensors")
    for a, b in zip(m.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    fresh = torch.optim.Adam(loaded.parameters())  # restoring into an optimizer leaves it untouched
    assert checkpoint.restore(tmp_path / "w.safetensors", loaded, fresh) == {"step": 7}
    assert fresh.state_dict()["state"] == {}


def test_weights_only_of_a_corrupt_checkpoint_names_it_and_writes_nothing(tmp_path):
    (tmp_path / "bad.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(VaekitError, match="bad.safetensors"):
        checkpoint.weights_only(tmp_path / "bad.safetensors", tmp_path / "w.safetensors")
    assert not (tmp_path / "w.safetensors").exists()


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

    real = Path.write_bytes

    def boom(self, data):
        real(self, data[: len(data) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_bytes", boom)
    with pytest.raises(OSError):
        checkpoint.save(path, m, step=2)
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]  # no temp file left behind
    assert checkpoint.read(path)[1]["meta"]["step"] == 1


def test_different_model_is_refused(tmp_path):
    checkpoint.save(tmp_path / "c.safetensors", model())
    other = vaekit.build("vae", data_shape=(10,), latent_dim=3, hidden=(16,))
    with pytest.raises(VaekitError, match="different model"):
        checkpoint.restore(tmp_path / "c.safetensors", other)


# -- the header's model config is checked before anything is built from it ---------------------------------
def forge(src, dst, **config):
    """Copy checkpoint `src` to `dst` with fields of its model config replaced, and a matching checksum (the
    SHA-256 is a checksum, not a signature: anyone can write one)."""
    tensors, header = checkpoint.read(src)
    header["model"]["config"].update(config)
    header["sha256"] = checkpoint._digest(tensors, header)
    save_file(tensors, dst, metadata={"vaekit": json.dumps(header)})
    return dst


@pytest.mark.parametrize(
    "value, message",
    [
        (2.5, "config field latent_dim must be an integer, got 2.5"),
        (True, "config field latent_dim must be an integer, got true"),
        ("8", 'config field latent_dim must be an integer, got "8"'),
        (-1, "config field latent_dim must be >= 1, got -1"),
    ],
)
def test_bad_config_values_are_one_line_errors(tmp_path, value, message):
    with pytest.raises(VaekitError) as e:
        vaekit.from_config({"model": "vae", "config": {"latent_dim": value}})
    assert str(e.value) == message
    checkpoint.save(tmp_path / "c.safetensors", model())
    forge(tmp_path / "c.safetensors", tmp_path / "bad.safetensors", latent_dim=value)
    with pytest.raises(VaekitError) as e:
        checkpoint.load_model(tmp_path / "bad.safetensors")
    assert str(e.value) == f"{tmp_path / 'bad.safetensors'}: {message}"


def test_config_types_come_from_the_field_annotations():
    m = vaekit.build("vae", data_shape=[6], hidden=[8], latent_dim=np.int64(2), beta=2, sigma=1, likelihood="gaussian")
    assert m.config.data_shape == (6,) and m.config.hidden == (8,)  # lists are tuples
    assert type(m.config.latent_dim) is int and json.dumps(vaekit.models.config_dict(m))
    assert type(m.config.beta) is float and m.config.sigma == 1.0  # floats take integers
    for name, config, message in [
        ("vae", {"hidden": [8, 2.5]}, "config field hidden must be a list of integers, got [8, 2.5]"),
        ("vae", {"hidden": 8}, "config field hidden must be a list of integers, got 8"),
        ("vae", {"hidden": [1] * 5000}, "config field hidden holds 5000 entries, more than 1024"),  # no 5000 layers
        ("vae", {"sigma": "0.1"}, 'config field sigma must be a finite number or null, got "0.1"'),
        ("vae", {"beta": float("inf")}, "config field beta must be a finite number, got Infinity"),
        ("vae", {"activation": ["relu"]}, 'config field activation must be a string, got ["relu"]'),
        ("vae", {"arch": "rnn"}, "config field arch must be 'mlp', 'conv' or 'conv1d', got 'rnn'"),  # enumerations
        ("avb", {"contrast": 1}, "config field contrast must be true or false, got 1"),
        ("gan", {"noise_dim": None}, "config field noise_dim must be an integer, got null"),
        ("chemvae", {"tokens": ["C", 1]}, 'config field tokens must be a list of strings, got ["C", 1]'),
        ("chemvae", {"prop_std": [1, True]}, "config field prop_std must be a list of finite numbers, got [1, true]"),
    ]:
        with pytest.raises(VaekitError) as e:
            vaekit.from_config({"model": name, "config": config})
        assert str(e.value) == message


def test_crafted_header_shapes_are_refused_naming_the_tensor(tmp_path):
    path = tmp_path / "c.safetensors"
    checkpoint.save(path, model())
    tensors, header = checkpoint.read(path)
    index = {k: {"shape": list(v.shape)} for k, v in tensors.items()}
    checkpoint.check_model_fits(path, header["model"], index, 0)  # the saved file fits
    index["model.encoder.body.net.0.weight"]["shape"] = [10, 16]  # (16, 10) transposed: same count
    with pytest.raises(
        VaekitError,
        match=r"tensor model.encoder.body.net.0.weight has shape \[10, 16\] in the file, "
        r"the config implies \[16, 10\]",
    ):
        checkpoint.check_model_fits(path, header["model"], index, 0)
    index["model.encoder.body.net.0.wieght"] = index.pop("model.encoder.body.net.0.weight")
    with pytest.raises(VaekitError, match="tensor model.encoder.body.net.0.weight is missing"):
        checkpoint.check_model_fits(path, header["model"], index, 0)
    forge(path, tmp_path / "wide.safetensors", hidden=[17])

    def count(h):  # x (10) -> h -> (mu, log sigma) (2 * 3); z (3) -> h -> logits (10): weights and biases
        return (10 + 1) * h + (h + 1) * 6 + (3 + 1) * h + (h + 1) * 10

    with pytest.raises(
        VaekitError,
        match=rf"wide.safetensors: the model config in the header implies {count(17)} "
        rf"parameters \({4 * count(17):,} bytes\) but the file holds {count(16)} \(",
    ):
        checkpoint.load_model(tmp_path / "wide.safetensors")


SMALL = [
    ("aae", dict(data_shape=(6,), latent_dim=2, hidden=(8,), prior="mixture", disc_hidden=(4,))),
    ("avb", dict(data_shape=(6,), latent_dim=2, hidden=(8,), critic_hidden=(4,))),
    ("fontvae", dict(data_shape=(3, 8, 8), latent_dim=2, hidden=(8,), arch="conv", channels=(2, 2))),
    ("gan", dict(data_shape=(3,), hidden=(4,), disc_hidden=(4,))),
    (
        "chemvae",
        dict(
            tokens=("<pad>", "<bos>", "<eos>", "C", "O"),
            max_len=8,
            latent_dim=2,
            conv_channels=(2,),
            conv_kernels=(3,),
            dense=4,
            embed_dim=2,
            gru_hidden=4,
            gru_layers=2,
            prop_hidden=(4,),
        ),
    ),
    (
        "vae",
        dict(
            data_shape=(1, 9, 7),
            latent_dim=2,
            hidden=(8,),
            arch="conv",
            channels=(2, 3),
            likelihood="gaussian",
            sigma=None,
        ),
    ),
]


@pytest.mark.parametrize("name, config", SMALL, ids=[n for n, _ in SMALL])
def test_every_model_builds_on_the_meta_device_and_round_trips(tmp_path, name, config):
    """The shapes found without memory are the real model's, so good checkpoints of every model still load."""
    assert {n for n, _ in SMALL} | {"autoencoder", "iwae"} == set(vaekit.models.REGISTRY)  # (those two: above)
    torch.manual_seed(0)
    m = vaekit.build(name, **config)
    shapes = vaekit.models.state_shapes(vaekit.models.config_dict(m))
    assert shapes == {k: (tuple(v.shape), v.element_size()) for k, v in m.state_dict().items()}
    checkpoint.save(tmp_path / "c.safetensors", m)
    loaded = checkpoint.load_model(tmp_path / "c.safetensors")
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), loaded.state_dict().values()))
    assert torch.distributions.Distribution._validate_args == __debug__  # the meta build left it as it was


REFUSAL = r"""
import json, resource, sys
import vaekit
from vaekit import checkpoint
from vaekit.cli import main

vm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmSize")) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + 2**32, resource.getrlimit(resource.RLIMIT_AS)[1]))  # if broken: no 34 GB
small, big, run = sys.argv[1:]


def refused(fn):
    try:
        fn()
    except vaekit.VaekitError as e:
        return str(e)
    except SystemExit as e:
        return e.code
    raise AssertionError("accepted")


def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


refused(lambda: checkpoint.load_model(small))          # warm up: the same path on a small file
refused(lambda: main(["sample", small.rsplit("/", 1)[0]]))
p0 = peak()
message = refused(lambda: checkpoint.load_model(big))
p1 = peak()
code = refused(lambda: main(["sample", run]))
print(json.dumps({"message": message, "load_growth": p1 - p0, "code": code, "cli_growth": peak() - p1}))
"""


def test_crafted_huge_header_is_refused_without_allocating(tmp_path):
    """A checkpoint of a 1.6 MB model whose header claims hidden [65536, 65536] (34 GB of weights) is refused by
    load_model and by `vaekit sample` in one line, and peak memory grows by less than twice the file's size."""
    import subprocess
    import sys

    for name, shape, hidden in [("small", (6,), (4,)), ("big", (784,), (256,))]:
        (tmp_path / name).mkdir()
        torch.manual_seed(0)
        checkpoint.save(
            tmp_path / name / "good.safetensors", vaekit.build("vae", data_shape=shape, latent_dim=8, hidden=hidden)
        )
        forge(tmp_path / name / "good.safetensors", tmp_path / name / "checkpoint.safetensors", hidden=[65536, 65536])
    big = tmp_path / "big" / "checkpoint.safetensors"
    size = big.stat().st_size
    assert size > 10**6
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            REFUSAL,
            str(tmp_path / "small" / "checkpoint.safetensors"),
            str(big),
            str(tmp_path / "big"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout)
    assert res["message"].startswith(f"{big}: the model config in the header implies ")
    assert "34," in res["message"] and "\n" not in res["message"]  # 34,... GB claimed
    assert res["load_growth"] < 2 * size and res["cli_growth"] < 2 * size
    assert res["code"] == 2
    errors = [line for line in out.stderr.splitlines() if line.startswith("vaekit: error:")]
    assert len(errors) == 2 and errors[-1].startswith(f"vaekit: error: {big}: the model config in the header implies")


def test_fit_config_file_with_a_bad_value_is_one_line_error(tmp_path, capsys):
    from vaekit.cli import main

    (tmp_path / "c.json").write_text(json.dumps({"latent_dim": 2.5, "hidden": [8]}))
    with pytest.raises(SystemExit) as e:
        main(
            [
                "fit",
                str(tmp_path / "run"),
                "--config",
                str(tmp_path / "c.json"),
                "--epochs",
                "1",
                "--no-progress",
                "--no-tensorboard",
            ]
        )
    assert e.value.code == 2
    assert capsys.readouterr().err.strip() == "vaekit: error: config field latent_dim must be an integer, got 2.5"
