#!/usr/bin/env bash
# The MOSES-size chemical VAE on the whole MOSES train split (1.58 M molecules), trained on one GPU.
#
#   bash bench/gpu/train_chemvae.sh OUT_DIR
#
# OUT_DIR gets a vaekit run folder (checkpoint.safetensors, config.json, log.csv, training.json); `vaekit fit
# OUT_DIR --resume` goes on from it, on a GPU or on CPU.  It also gets weights.safetensors, the same model without
# its optimizer state (a third of the size, under the 25 MB of a committed model; `--init-from` takes it).
# The model is the MOSES VAE's size: SMILES, latent 128, a 3 x 512 GRU decoder, batch 512, gradient norm clipped
# to 50 (Polykovskiy et al. 2020).  The KL weight is BETA, default 1, not the MOSES VAE's 0.05: at 0.05 our prior
# samples drifted away from the aggregate posterior as training went on (FCD/Test 3.3 at 5 CPU-min, 4.2 at 100;
# bench/results/chem_fcd_curve_smiles.json), at 1 they did not (bench/results/chem_fcd_kl_weight.json).
# BETA=0.001 gives a low-KL model for reconstruction and optimisation instead (models/chemvae-lowkl ends at
# 0.001).  The weight rises linearly from 0 over the first WARMUP (default 1000) steps.
# Training stops after MINUTES (default 8) of wall time, so that the whole run fits in 10 minutes of an
# H200-class GPU with a minute to read and tokenise the data; the molecules are scored (logP, QED, SAS) first,
# on all CPU cores, into vaekit's cache (about 47 CPU-minutes for 1.58 M molecules, a few minutes on 16 cores;
# not counted in MINUTES).  A cache scored on another machine can be copied into vaekit's cache folder
# (`vaekit.data.core.cache_root()`, or the folder VAEKIT_CACHE names): it is keyed by the data file's content,
# reading it needs no RDKit, and the whole train split's is one compressed file of about 50 MB.
#
# Settings (environment): VAEKIT_DATA (the MOSES splits), MINUTES, BETA, WARMUP, DEVICE (default cuda), MOLECULES
# (default: all; a seeded subset of this many), JOBS (scoring processes, default: all cores), LR (the first
# learning rate, default 1e-3), INIT (a run or weights file to start from, --init-from: a continuation; give it
# WARMUP=0 and a smaller LR), SNAPSHOT_MINUTES (every so many minutes, the checkpoint's weights are also kept as
# OUT_DIR/snapshots/step-N.safetensors, for a curve of quality against GPU-minutes; default: none).  The project never
# needs a GPU: DEVICE=cpu MOLECULES=2000 MINUTES=0.2 runs the same script on CPU (that is how it is tested).
set -euo pipefail
out=${1:?usage: bash bench/gpu/train_chemvae.sh OUT_DIR}
minutes=${MINUTES:-8}
device=${DEVICE:-cuda}
beta=${BETA:-1}
warmup=${WARMUP:-1000}
jobs=${JOBS:-$(nproc)}
lr=${LR:-1e-3}
subset=()
[ -n "${MOLECULES:-}" ] && subset=(--molecules "$MOLECULES")
init=()
[ -n "${INIT:-}" ] && init=(--init-from "$INIT")
python=${PYTHON:-python}

"$python" - "$jobs" "${MOLECULES:-}" <<'PY'
import sys, time
from vaekit.chem.dataset import scored
t = time.perf_counter()
mols = scored("moses", "train", limit=int(sys.argv[2]) if sys.argv[2] else None, seed=0, n_jobs=int(sys.argv[1]))
print(f"{len(mols)} molecules scored or read from the cache in {time.perf_counter() - t:.0f} s", flush=True)
PY

seconds=$("$python" -c "print(float('$minutes') * 60)")
if [ -n "${SNAPSHOT_MINUTES:-}" ]; then  # a watcher beside the training, stopped when it ends
  "$python" - "$out" "$SNAPSHOT_MINUTES" <<'PY' &
import sys, time
from pathlib import Path
from vaekit.checkpoint import read, weights_only
out, every, last = Path(sys.argv[1]), float(sys.argv[2]) * 60, None
while True:
    time.sleep(every)
    try:
        step = read(out / "checkpoint.safetensors")[1]["meta"]["step"]
    except Exception:  # not written yet
        continue
    if step == last:
        continue
    last = step
    (out / "snapshots").mkdir(exist_ok=True)
    weights_only(out / "checkpoint.safetensors", out / "snapshots" / f"step-{step}.safetensors")
    print(f"snapshot at step {step}", flush=True)
PY
  trap 'kill $! 2>/dev/null' EXIT
fi
"$python" -m vaekit fit "$out" --model chemvae --data moses "${subset[@]}" --kind smiles \
  --latent-dim 128 --gru-hidden 512 --gru-layers 3 --beta "$beta" --warmup-steps "$warmup" "${init[@]}" \
  --batch-size 512 --lr "$lr" --lr-schedule cosine --lr-final 1e-5 --grad-clip 50 --on-nonfinite skip \
  --epochs 100 --val-fraction 0.01 \
  --max-seconds "$seconds" --budget-clock wall --checkpoint-every 500 --device "$device" --no-progress
# the last weights, trained to the end of the cosine schedule
"$python" -c "import sys; from vaekit.checkpoint import weights_only; weights_only(*sys.argv[1:])" \
  "$out/checkpoint.safetensors" "$out/weights.safetensors"
