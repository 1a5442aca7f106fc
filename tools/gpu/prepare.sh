#!/usr/bin/env bash
# Run on the development machine (no GPU), from anywhere inside the repo. Builds everything a GPU
# session carries to the device machine, which has no network:
#   .gpu/deno.xz      this machine's deno binary, xz-compressed (x86-64; unpacked there by run.sh)
#   .gl/*.deb         the Vulkan loader and GL/EGL vendor-neutral libraries (device README recipe)
#   .gpu/node_modules the npm packages the GPU run imports (fast-png, zod and their dependencies),
#                     not the build-only ones (assemblyscript and its 94 MB binaryen, vega for
#                     figures); run.sh uses it as node_modules/ with --node-modules-dir=manual
# and prints what the run tool will send (tree + carried paths), which must stay under 64 MiB.
# Idempotent: rerunning refreshes deno.xz only when the deno binary changed.
set -euo pipefail
ROOT="$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"
cd "$ROOT"
LIMIT=$((64 * 1024 * 1024))

# 1. Keep the carried folders out of git (the run tool sends tracked + untracked-not-ignored files).
mkdir -p .git/info
touch .git/info/exclude
for p in /.gpu/ /.gl/; do
  grep -qxF "$p" .git/info/exclude || echo "$p" >>.git/info/exclude
done
mkdir -p .gpu .gl

# 2. deno, compressed. The device machine is x86-64.
DENO="$(command -v deno)"
[ "$(uname -m)" = x86_64 ] || { echo "prepare.sh: this machine is $(uname -m); carry an x86-64 deno" >&2; exit 1; }
DENO_REAL="$(readlink -f "$DENO")"
SUM="$(sha256sum "$DENO_REAL" | cut -d' ' -f1)"
if [ ! -s .gpu/deno.xz ] || [ "$(cat .gpu/deno.sha256 2>/dev/null)" != "$SUM" ]; then
  echo "compressing $DENO_REAL ($(deno --version | head -1)) ..."
  xz -T2 -c "$DENO_REAL" >.gpu/deno.xz.tmp
  mv .gpu/deno.xz.tmp .gpu/deno.xz
  echo "$SUM" >.gpu/deno.sha256
fi
deno --version | head -1 >.gpu/deno.version

# 3. Vulkan loader + glvnd libraries, per /work/.library/device/README.md. Debian packages for
#    amd64 whatever this machine's architecture; unpacked there with `dpkg -x f /`.
if ! ls .gl/libvulkan1_*.deb >/dev/null 2>&1; then
  mkdir -p /tmp/amd64/partial
  o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
  apt-get "${o[@]}" update >/dev/null
  chmod 777 .gl # lets apt's _apt user write there (else a harmless warning)
  (cd .gl && apt-get "${o[@]}" download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
fi
ls .gl/libvulkan1_*.deb >/dev/null

# 4. npm packages for the run: a node_modules/ holding only the npm imports of core/deps.ts,
#    installed from this machine's cache into a scratch project and moved to .gpu/node_modules.
#    (The project's own node_modules/ also holds the wasm and figure tool chains: 130+ MiB.)
deno install --quiet
PKG="$(mktemp -d)"
trap 'rm -rf "$PKG"' EXIT
# Every npm: import of core/deps.ts (the runtime's; plots import theirs in core/eval/plot_deps.ts).
grep -o '"npm:[^"]*"' core/deps.ts | tr -d '"' | sort -u >"$PKG/specs"
[ -s "$PKG/specs" ] || { echo "prepare.sh: no npm: imports found in core/deps.ts" >&2; exit 1; }
awk '{ printf "import \"%s\";\n", $0 }' "$PKG/specs" >"$PKG/main.ts"
echo '{ "nodeModulesDir": "auto" }' >"$PKG/deno.json"
(cd "$PKG" && deno install --quiet --entrypoint main.ts)
rm -rf .gpu/node_modules
cp -a "$PKG/node_modules" .gpu/node_modules
# Proof that nothing beyond it is needed: a copy of the tree with .gpu/node_modules as its
# node_modules, an empty DENO_DIR, --cached-only --node-modules-dir=manual and (where unshare
# works) no network: the tasks run.sh calls must still load (--help).
EMPTY="$PKG/deno_dir" TREE="$PKG/tree"
mkdir -p "$EMPTY" "$TREE"
git ls-files -z --cached --others --exclude-standard | xargs -0 -r cp --parents -t "$TREE" --
cp -a .gpu/node_modules "$TREE/node_modules"
NONET=()
unshare -n true 2>/dev/null && NONET=(unshare -n)
for f in tasks/bench.ts tasks/train.ts tools/gpu/report.ts; do
  rc=0
  (cd "$TREE" && DENO_DIR="$EMPTY" "${NONET[@]}" deno run -A --cached-only --node-modules-dir=manual \
    "$f" --help >/dev/null 2>"$PKG/err") || rc=$?
  if [ $rc -ne 0 ] && [ $rc -ne 64 ]; then
    cat "$PKG/err" >&2
    echo "prepare.sh: $f does not load offline from .gpu/node_modules/" >&2
    exit 1
  fi
done
echo "offline load check passed${NONET[*]:+ (no network)}"

# 5. Size of what one run call sends: tracked + untracked-not-ignored files + carried paths.
tree_bytes=$(git ls-files -z --cached --others --exclude-standard | xargs -0 -r stat -c %s -- 2>/dev/null |
  awk '{s+=$1} END {print s+0}')
shared_bytes=0
[ -d shared ] && shared_bytes=$(du -sb shared | cut -f1)
carry_bytes=$(du -sb .gpu .gl | awk '{s+=$1} END {print s}')
total=$((tree_bytes + shared_bytes + carry_bytes))
echo "carry:"
du -sh .gpu/deno.xz .gpu/node_modules .gl
printf 'tree %.1f MiB + carry %.1f MiB = %.1f MiB (limit 64 MiB)\n' \
  "$(echo "$tree_bytes/1048576" | bc -l)" "$(echo "$carry_bytes/1048576" | bc -l)" \
  "$(echo "$((total))/1048576" | bc -l)"
if [ "$total" -ge "$LIMIT" ]; then
  echo "prepare.sh: over the 64 MiB limit" >&2
  exit 1
fi
echo 'ready: run with carry [".gpu", ".gl"] (see docs/gpu.md)'
