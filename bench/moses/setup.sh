#!/usr/bin/env bash
# Build a virtualenv with MOSES (the `molsets` package, 0.3.1) and just what its VAE trainer and its
# metrics need, then apply bench/moses/molsets.patch to the installed package.
#
#     bash bench/moses/setup.sh VENV_DIR
#
# The venv lives outside the repository (e.g. one in /tmp); nothing of MOSES enters vaekit.
# `molsets` is installed without its dependencies: it pins pomegranate==0.12 (for its HMM baseline), which
# no longer builds and is not needed here.  torch is pinned to the CPU build this machine already has.
set -euo pipefail
if [ $# -ne 1 ]; then
    echo "usage: bash bench/moses/setup.sh VENV_DIR" >&2
    exit 2
fi
venv=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
python=${PYTHON:-python3}

"$python" -m venv "$venv"
pip="$venv/bin/python -m pip"
$pip install --quiet torch==2.13.0
$pip install --quiet numpy==2.4.6 scipy==1.17.1 pandas==3.1.1 tqdm==4.70.1 rdkit==2026.9.1 \
    matplotlib==3.11.2 fcd-torch==1.0.7
$pip install --quiet --no-deps molsets==0.3.1

site=$("$venv/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
if patch --dry-run --forward --silent -p1 -d "$site" < "$here/molsets.patch" > /dev/null; then
    patch --forward --silent -p1 -d "$site" < "$here/molsets.patch"
    echo "applied molsets.patch to $site/moses"
else
    # already applied (setup rerun on the same venv) or the package differs: the reverse dry run tells which
    patch --dry-run --reverse --silent -p1 -d "$site" < "$here/molsets.patch" > /dev/null \
        || { echo "molsets.patch does not apply to $site/moses" >&2; exit 1; }
    echo "molsets.patch already applied"
fi
"$venv/bin/python" -c "import moses, moses.vae; print('moses', moses.__version__, 'ready')"
