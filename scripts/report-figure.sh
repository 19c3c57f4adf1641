#!/usr/bin/env bash
# One section of a run's report.html as a PNG, for the README: the page's head (its CSS) and that
# section alone, screenshot by headless Chromium (Debian's chromium; SAHA_CHROMIUM overrides) in a
# window as tall as the section's charts and table rows need.
#   bash scripts/report-figure.sh runs/demo-real/report.html eval docs/demo-real.png
set -euo pipefail
html=$1 section=$2 png=$3 width=${4:-1150}
chromium=${SAHA_CHROMIUM:-chromium}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
height=$(awk -v id="<section id=\"$section\">" -v page="$tmp/page.html" '
  !body { print > page } /<main>/ { body = 1 }
  index($0, id) == 1 { inside = 1 }
  inside {
    print > page
    if (match($0, /<svg width="[0-9]+" height="[0-9]+"/)) { split(substr($0, RSTART, RLENGTH), f, "\""); h += f[4] }
    h += gsub(/<tr/, "&") * 26 + gsub(/<p[ >]/, "&") * 24
  }
  inside && /<\/section>/ { inside = 0; found = 1 }
  END { print "</main>\n</body>\n</html>" > page; if (!found) exit 1; print h + 110 }
' "$html") || { echo "$html: no section \"$section\"" >&2; exit 1; }
"$chromium" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run --hide-scrollbars \
  --user-data-dir="$tmp/profile" --screenshot="$png" --window-size="$width,$height" "file://$tmp/page.html" 2>/dev/null
echo "$png: section \"$section\" of $html (${width}x$height)"
