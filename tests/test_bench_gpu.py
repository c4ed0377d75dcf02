"""The GPU training script runs end to end on CPU (a tiny subset, seconds of training): slow, needs MOSES."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from vaekit.data.smiles import moses_path

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_script_trains_a_resumable_moses_size_run_on_cpu(tmp_path):
    try:
        moses_path("train")
    except Exception:
        pytest.skip("needs the MOSES splits ($VAEKIT_DATA)")
    env = {
        **os.environ,
        "DEVICE": "cpu",
        "MOLECULES": "2000",
        "MINUTES": "0.05",
        "JOBS": "2",
        "SNAPSHOT_MINUTES": "0.005",
    }
    subprocess.run(["bash", str(ROOT / "bench/gpu/train_chemvae.sh"), str(tmp_path / "run")], env=env, check=True)
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["model"]["config"]["gru_hidden"] == 512 and cfg["model"]["config"]["latent_dim"] == 128
    assert (tmp_path / "run" / "checkpoint.safetensors").is_file()
    assert cfg["model"]["config"]["beta"] == 1.0 and cfg["train"]["grad_clip"] == 50.0
    from vaekit.checkpoint import load_model

    shipped = load_model(tmp_path / "run" / "weights.safetensors")  # the optimizer-free copy loads as the model
    assert shipped.config.gru_layers == 3
    assert (tmp_path / "run" / "weights.safetensors").stat().st_size < (
        tmp_path / "run" / "checkpoint.safetensors"
    ).stat().st_size / 2
    snaps = list((tmp_path / "run" / "snapshots").glob("step-*.safetensors"))
    assert snaps and load_model(snaps[0]).config.gru_layers == 3  # weights kept along the way, for a curve
    # a continuation from the shipped weights, at its own learning rate
    env = {**env, "INIT": str(tmp_path / "run" / "weights.safetensors"), "LR": "3e-4", "WARMUP": "0"}
    env.pop("SNAPSHOT_MINUTES")
    subprocess.run(["bash", str(ROOT / "bench/gpu/train_chemvae.sh"), str(tmp_path / "next")], env=env, check=True)
    cfg = json.loads((tmp_path / "next" / "config.json").read_text())
    assert cfg["train"]["lr"] == 3e-4 and cfg["data"]["init_from"].endswith("weights.safetensors")
    assert not (tmp_path / "next" / "snapshots").exists()
