#!/usr/bin/env bash
# What a person sees in TensorBoard: serve a run directory's tensorboard/ on loopback and
# screenshot each dashboard with headless Chromium (Debian: apt-get install chromium).
# Run by hand, never in the test suite:
#   bench/screenshot_tensorboard.sh <run_dir> [out_dir]      # PNGs: out_dir/<page>.png
set -euo pipefail
run_dir=${1:?usage: $0 <run_dir> [out_dir]}
out=${2:-$run_dir/screenshots}
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$here/.venv/bin/python}
chromium=$(command -v chromium || command -v chromium-browser || true)
[ -n "$chromium" ] || { echo "error: no chromium; apt-get install -y chromium" >&2; exit 1; }
mkdir -p "$out"
port=${PORT:-6123}
"$python" -m tensorboard.main --logdir "$run_dir/tensorboard" --host 127.0.0.1 --port "$port" \
  --reload_interval 0 >"$out/tensorboard.log" 2>&1 &
tb=$!
trap 'kill $tb 2>/dev/null || true' EXIT
for _ in $(seq 60); do curl -sf "http://127.0.0.1:$port/" >/dev/null && break; sleep 1; done
# TensorBoard is a single-page app: the dashboard is chosen by the URL fragment
for page in scalars text images hparams; do
  "$chromium" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1400,1600 \
    --virtual-time-budget=15000 --screenshot="$out/$page.png" "http://127.0.0.1:$port/#$page" \
    >/dev/null 2>&1 || echo "warning: $page screenshot failed" >&2
  echo "$out/$page.png"
done
