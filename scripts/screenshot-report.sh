#!/usr/bin/env bash
# Renders a report's HTML in headless Chromium and saves a full-page-width screenshot:
#   scripts/screenshot-report.sh REPORT.html OUT.png [WIDTHxHEIGHT]
# Every network feature is off: the report must render from the file alone.
set -euo pipefail
html=$(realpath "$1")
png=$(realpath -m "$2")
size=${3:-1500x4000}
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
[ -n "$browser" ] || { echo "error: no chromium on PATH (apt-get install chromium)" >&2; exit 2; }
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update \
    --disable-sync --no-first-run --disable-extensions --hide-scrollbars --virtual-time-budget=10000 --user-data-dir="$profile" \
    --window-size="${size/x/,}" --screenshot="$png" "file://$html" >/dev/null 2>&1
[ -s "$png" ] || { echo "error: chromium wrote no screenshot to $png" >&2; exit 1; }
