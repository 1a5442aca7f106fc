#!/usr/bin/env bash
# Runs ON the GPU machine, in the repo root, in one `run` call (docs/gpu.md has the exact call):
#   bash tools/gpu/run.sh [--quick] [--budget S] [--allow-software] [--skip-bench] [--skip-torch]
#                         [--timing synced|pipelined] [-- TRAIN_ARGS...]
# 1. unpacks .gpu/deno.xz to /tmp/deno and the .gl/*.deb Vulkan loader (device README recipe);
# 2. probes the WebGPU adapter -> $OUT/adapter.json; if none or only a software one, points the
#    loader at NVIDIA's ICD (VK_DRIVER_FILES) and probes again;
# 3. tasks/bench.ts at the thesis shapes (matmul, conv, attention, train, each under its own
#    timeout; --timing is passed on) -> $OUT/bench.json, then tools/gpu/host_costs.ts (the host
#    cost of the WebGPU calls a kernel launch makes, into run.log);
# 4. bench/torch_baseline.py (same --timing) -> $OUT/torch.json;
# 5. optionally tasks/train.ts TRAIN_ARGS (e.g. all --config presets/thesis.jsonc --max-minutes 3
#    --out /tmp/run --resume), stopped with SIGINT (graceful save) before the budget ends; the
#    run folder comes back as $OUT/run.tgz (split in 15 MB parts run.tgz.part-a? if larger).
#    A previous session's run folder carried as .gpu/run.tgz is unpacked to /tmp/run first.
# Everything is logged to $OUT/run.log. The whole script stays inside --budget seconds (default
# 510, for a call with timeout_s 570..600). Exit: 0 all good, 1 some step failed, 2 no hardware
# adapter (the torch baseline still runs).
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
OUT="${OUT:-/tmp/gpu_out}"
mkdir -p "$OUT"
BUDGET=510 QUICK="" ALLOW_SW=0 SKIP_BENCH=0 SKIP_TORCH=0 TIMING=synced TRAIN=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=--quick ;;
    --budget) BUDGET="$2"; shift ;;
    --allow-software) ALLOW_SW=1 ;;
    --skip-bench) SKIP_BENCH=1 ;;
    --skip-torch) SKIP_TORCH=1 ;;
    --timing)
      case "${2:-}" in synced | pipelined) TIMING="$2" ;; *) echo "run.sh: --timing synced|pipelined" >&2; exit 64 ;; esac
      shift ;;
    --) shift; TRAIN=("$@"); break ;;
    *) echo "run.sh: unknown option $1" >&2; exit 64 ;;
  esac
  shift
done
exec > >(tee -a "$OUT/run.log") 2>&1
START=$SECONDS
FAIL=0
left() { echo $((BUDGET - (SECONDS - START))); }
# cap SECONDS: a step's timeout, never past the budget (keeps 15 s for packing up)
cap() { local l=$(($(left) - 15)); [ "$1" -lt "$l" ] && echo "$1" || echo $((l > 1 ? l : 1)); }
step() { echo; echo "=== [$((SECONDS - START))s] $*"; }

step "setup"
export PATH="/tmp/deno:$PATH" DENO_DIR=/tmp/deno_dir DENO_NO_UPDATE_CHECK=1 NO_COLOR=1
export XDG_RUNTIME_DIR=/tmp/xdg PYTHONUNBUFFERED=1
mkdir -p /tmp/deno /tmp/xdg
if [ -s .gpu/deno.xz ]; then
  xz -dc .gpu/deno.xz >/tmp/deno/deno && chmod +x /tmp/deno/deno
fi
command -v deno >/dev/null || { echo "run.sh: no deno (run tools/gpu/prepare.sh, carry .gpu)"; exit 1; }
deno --version | head -1
# The npm packages prepare.sh put in .gpu/node_modules (the runtime ones only) serve as
# node_modules/ where there is none; deno reads them as they are (--node-modules-dir=manual), since
# the lockfile's build-only packages are not there.
if [ ! -d node_modules ] && [ -d .gpu/node_modules ]; then
  ln -s .gpu/node_modules node_modules
fi
[ -d node_modules ] || { echo "run.sh: no node_modules (run tools/gpu/prepare.sh, carry .gpu)"; exit 1; }
DRUN=(deno run -A --cached-only --node-modules-dir=manual)
if ls .gl/*.deb >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && [ "${SKIP_GL:-0}" = 0 ]; then
  # device README recipe, every run: the loader and glvnd libraries the NVIDIA ICD needs
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
ldconfig -p | grep -E 'libvulkan.so.1|libGLX_nvidia|libnvidia-glcore' | head -5
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>/dev/null

step "adapter"
probe() { timeout -k 5 "$(cap 60)" "${DRUN[@]}" tools/gpu/adapter.ts "$OUT/adapter.json"; }
probe
rc=$?
if [ $rc -ne 0 ] && [ $ALLOW_SW -eq 0 ]; then
  echo "no hardware adapter (probe rc $rc): pointing the loader at NVIDIA's ICD"
  ICD=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  [ -f "$ICD" ] || ICD="$(ls /usr/share/vulkan/icd.d/nvidia*.json /etc/vulkan/icd.d/nvidia*.json \
    /usr/local/nvidia/share/vulkan/icd.d/*.json 2>/dev/null | head -1)"
  echo "ICD: ${ICD:-none found}"
  [ -n "$ICD" ] && cat "$ICD"
  [ -n "$ICD" ] && export VK_DRIVER_FILES="$ICD" VK_ICD_FILENAMES="$ICD"
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
    [ -d "$d" ] && export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  done
  probe
  rc=$?
  if [ $rc -ne 0 ]; then
    echo "still no hardware adapter; loader diagnostics:"
    VK_LOADER_DEBUG=error,warn,driver timeout 30 "${DRUN[@]}" tools/gpu/adapter.ts 2>&1 |
      head -60
  fi
fi
HW=0
{ [ $rc -eq 0 ] || { [ $ALLOW_SW -eq 1 ] && [ $rc -eq 3 ]; }; } && HW=1

if [ $HW -eq 1 ] && [ $SKIP_BENCH -eq 0 ]; then
  # One timeout per section, so a slow section cannot lose the others' numbers.
  for part in matmul:100 conv:100 attention:60 train:120; do
    name=${part%%:*} t=${part##*:}
    step "deno bench --only $name --timing $TIMING (timeout $(cap "$t")s)"
    timeout -k 5 "$(cap "$t")" "${DRUN[@]}" tasks/bench.ts --backend webgpu $QUICK --only "$name" \
      --timing "$TIMING" --json "/tmp/bench_$name.json" || { echo "bench $name failed (rc $?)"; FAIL=1; }
  done
  deno eval --cached-only --node-modules-dir=manual '
    const parts = ["matmul", "conv", "attention", "train"].flatMap((n) => {
      try {
        const p = JSON.parse(Deno.readTextFileSync(`/tmp/bench_${n}.json`));
        // every part starts with its own "sync round trip" row: keep the first one only
        return [{ ...p, results: p.results.filter((r) => n === "matmul" || r.name !== "sync round trip") }];
      } catch { return []; }
    });
    if (parts.length) {
      const out = { ...parts[0], date: new Date().toISOString(), results: parts.flatMap((p) => p.results) };
      Deno.writeTextFileSync(Deno.args[0], JSON.stringify(out, null, 2));
      console.log(`bench.json: ${out.results.length} results`);
    }' "$OUT/bench.json"
  step "host costs of WebGPU calls (timeout $(cap 30)s)"
  timeout -k 5 "$(cap 30)" "${DRUN[@]}" tools/gpu/host_costs.ts || echo "host_costs failed (rc $?)"
elif [ $HW -eq 0 ]; then
  echo "skipping deno bench: no hardware adapter"
  FAIL=2
fi

if [ $SKIP_TORCH -eq 0 ]; then
  step "torch baseline (timeout $(cap 150)s)"
  timeout -k 5 "$(cap 150)" "${PYTHON:-python3}" bench/torch_baseline.py $QUICK --timing "$TIMING" \
    --json "$OUT/torch.json" ||
    { echo "torch baseline failed (rc $?)"; [ $FAIL -eq 0 ] && FAIL=1; }
fi

if [ ${#TRAIN[@]} -gt 0 ] && [ $HW -eq 1 ]; then
  if [ -s .gpu/run.tgz ]; then
    mkdir -p /tmp/run && tar xzf .gpu/run.tgz -C /tmp/run && echo "unpacked .gpu/run.tgz to /tmp/run"
  fi
  t=$(($(left) - 45)) # 45 s: graceful stop + packing
  if [ $t -gt 20 ]; then
    step "train ${TRAIN[*]} (SIGINT after ${t}s)"
    timeout -s INT -k 30 "$t" "${DRUN[@]}" tasks/train.ts --backend webgpu "${TRAIN[@]}" ||
      { echo "train exited rc $?"; }
    if [ -d /tmp/run ]; then
      tar czf /tmp/run.tgz -C /tmp/run . && ls -la /tmp/run.tgz
      sz=$(stat -c %s /tmp/run.tgz)
      if [ "$sz" -le $((15 * 1024 * 1024)) ]; then
        cp /tmp/run.tgz "$OUT/run.tgz"
      elif [ "$sz" -le $((45 * 1024 * 1024)) ]; then
        split -b 15M -a 1 /tmp/run.tgz "$OUT/run.tgz.part-"
      else
        echo "run.tgz is $sz bytes: too large to bring back; keeping metrics only"
        tar czf "$OUT/run.tgz" -C /tmp/run --exclude='*.bin' --exclude='*.safetensors' .
      fi
      find /tmp/run -name '*.jsonl' | head -3 | while read -r f; do echo "$f:"; tail -2 "$f"; done
    fi
  else
    echo "no time left to train ($(left)s left)"
  fi
fi

step "done in $((SECONDS - START))s, status $FAIL"
ls -la "$OUT"
exit $FAIL
