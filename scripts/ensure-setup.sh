#!/usr/bin/env bash
# Run by `npm test` first: makes sure what the tests need is here, installs
# what npm can install, and says exactly what is missing otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d node_modules/@tensorflow/tfjs ] || [ ! -d node_modules/better-sqlite3 ]; then
  echo "petri: installing npm dependencies (npm ci)…"
  npm ci --no-audit --no-fund
fi

missing=()
chrome="${PETRI_CHROME:-}"
if [ -z "$chrome" ]; then
  for c in /usr/bin/chromium /usr/bin/chromium-browser /usr/bin/google-chrome; do
    if [ -x "$c" ]; then chrome="$c"; break; fi
  done
fi
[ -n "$chrome" ] || missing+=("Chromium for the browser tests: apt-get install -y chromium (or set PETRI_CHROME=/path/to/chrome)")
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || missing+=("Fashion-MNIST for the real-data test: apt-get install -y dataset-fashion-mnist")

if [ ${#missing[@]} -gt 0 ]; then
  echo "petri: the tests need what is missing here:" >&2
  for m in "${missing[@]}"; do echo "  - $m" >&2; done
  echo "(.ci/run installs both on Debian.)" >&2
  exit 1
fi

# The e2e tests serve the built pages; build them when the sources are newer.
if [ ! -f dist/client/index.html ] || [ -n "$(find client shared public vite.config.ts -newer dist/client/index.html -print -quit 2>/dev/null)" ]; then
  echo "petri: building the pages (vite build)…"
  npx vite build --logLevel warn
fi
