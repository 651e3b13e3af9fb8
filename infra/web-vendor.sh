#!/usr/bin/env bash
# Re-fetch the web UI's third-party assets from the npm registry (npm pack: exact versions) into
# dashcam/web/static/vendor/, licence files included. The result is committed; nothing is
# loaded from a CDN at run time. Run from the repository root: bash infra/web-vendor.sh
set -euo pipefail
cd "$(dirname "$0")/.."
HTMX=htmx.org@2.0.11
LEAFLET=leaflet@1.9.4
CLUSTER=leaflet.markercluster@1.5.3
dst=dashcam/web/static/vendor
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for p in $HTMX $LEAFLET $CLUSTER; do (cd "$tmp" && npm pack --silent "$p" >/dev/null); done
for f in "$tmp"/*.tgz; do d="$tmp/$(basename "$f" .tgz)"; mkdir -p "$d"; tar xzf "$f" -C "$d"; done
rm -rf "$dst"; mkdir -p "$dst/htmx" "$dst/leaflet/images" "$dst/markercluster"
cp "$tmp"/htmx.org-*/package/dist/htmx.min.js "$tmp"/htmx.org-*/package/LICENSE "$dst/htmx/"
cp "$tmp"/leaflet-*/package/dist/leaflet.js "$tmp"/leaflet-*/package/dist/leaflet.css "$tmp"/leaflet-*/package/LICENSE "$dst/leaflet/"
cp "$tmp"/leaflet-*/package/dist/images/*.png "$dst/leaflet/images/"
cp "$tmp"/leaflet.markercluster-*/package/dist/leaflet.markercluster.js \
   "$tmp"/leaflet.markercluster-*/package/dist/MarkerCluster.css \
   "$tmp"/leaflet.markercluster-*/package/dist/MarkerCluster.Default.css \
   "$tmp"/leaflet.markercluster-*/package/MIT-LICENCE.txt "$dst/markercluster/"
cat > "$dst/VERSIONS.txt" <<V
Fetched by infra/web-vendor.sh with npm pack from registry.npmjs.org:
$HTMX (0BSD, htmx/LICENSE)
$LEAFLET (BSD-2-Clause, leaflet/LICENSE)
$CLUSTER (MIT, markercluster/MIT-LICENCE.txt)
V
echo "vendor assets in $dst"
