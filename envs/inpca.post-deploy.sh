#!/usr/bin/env bash
# Runs once inside the new conda env, in Snakemake's working directory (the repository root):
# install the inpca package itself without touching the conda-provided dependencies.
set -euo pipefail
python -m pip install --no-deps --no-build-isolation -e .
