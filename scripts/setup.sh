#!/usr/bin/env bash
# Install everything ganbench needs into ./.venv: PyTorch, ganbench (editable) with its test extras (Ray included),
# the datasets and the Inception weights (each pinned by SHA-256). Safe to run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
TORCH_SPEC=${GANBENCH_TORCH_SPEC:-"torch==2.14.1 torchvision==0.29.1"}

if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import torch, torchvision" 2>/dev/null; then
  echo "== installing PyTorch ($TORCH_SPEC)"
  .venv/bin/pip install -q $TORCH_SPEC
fi
echo "== installing ganbench and its dependencies"
.venv/bin/pip install -q -e ".[test]"

# Debian ships Fashion-MNIST as a package; elsewhere `ganbench data fetch` downloads it via torchvision.
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "== installing Debian's dataset-fashion-mnist"
  (apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
   (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1)) || \
   echo "   (not available; ganbench data fetch will try a download)"
fi

# The report test loads a rendered leaderboard in headless Chromium (Debian's package, driven by playwright).
if ! command -v chromium >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "== installing Debian's chromium (headless browser for the report test)"
  (apt-get install -y -q chromium >/dev/null 2>&1 || \
   (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1)) || \
   echo "   (not available; the report browser test will be skipped)"
fi

echo "== fetching datasets and Inception weights"
.venv/bin/ganbench data fetch
.venv/bin/ganbench data verify >/dev/null
echo "== ready: .venv/bin/ganbench"
