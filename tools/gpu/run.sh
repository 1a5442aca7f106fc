#!/usr/bin/env bash
# Runs ON the GPU machine, in the repo root, in one `run` call (docs/gpu.md has the exact call):
#   bash tools/gpu/run.sh [--quick] [--budget S] [--allow-software] [--skip-bench] [--skip-torch]
#                         [--timing synced|pipelined] [--sweep CONFIGS [--sweep-base DIR]
#                         [--sweep-steps N] [--sweep-limit N]] [-- TRAIN_ARGS...]
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
# 6. optionally a decoder sweep (--sweep a.jsonc,b.jsonc,...): every config's decoder trained at
#    once, each in its own process (a small decoder's step is bound by the host, which has 16
#    cores), on the CLIP and prior of --sweep-base (default weights/default), stopped with SIGINT
#    in time to leave 200 s; then each exported (--half) and scored by `eval pipeline` on the test
#    and zero-shot splits with the base's probe -> $OUT/sweep.tgz (per config: the float16
#    decoder, metrics.jsonl, eval JSONs, logs; in 15 MB parts sweep.tgz.part-? if larger) and a
#    summary table in run.log.
#    --sweep-steps N adds --max-steps N and --sweep-limit N gives eval --limit N (dry runs);
#    SWEEP_BACKEND=cpu runs the sweep on the CPU backend (a dry run here, where llvmpipe is slow).
# Everything is logged to $OUT/run.log. The whole script stays inside --budget seconds (default
# 510, for a call with timeout_s 570..600). Exit: 0 all good, 1 some step failed, 2 no hardware
# adapter (the torch baseline still runs).
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
OUT="${OUT:-/tmp/gpu_out}"
mkdir -p "$OUT"
BUDGET=510 QUICK="" ALLOW_SW=0 SKIP_BENCH=0 SKIP_TORCH=0 TIMING=synced TRAIN=()
SWEEP="" SWEEP_BASE=weights/default SWEEP_STEPS="" SWEEP_LIMIT=""
SWEEP_BACKEND="${SWEEP_BACKEND:-webgpu}"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=--quick ;;
    --budget) BUDGET="$2"; shift ;;
    --allow-software) ALLOW_SW=1 ;;
    --skip-bench) SKIP_BENCH=1 ;;
    --skip-torch) SKIP_TORCH=1 ;;
    --sweep) SWEEP="$2"; shift ;;
    --sweep-base) SWEEP_BASE="$2"; shift ;;
    --sweep-steps) SWEEP_STEPS="$2"; shift ;;
    --sweep-limit) SWEEP_LIMIT="$2"; shift ;;
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

# Packs folder $1 into $OUT/$2: whole if it is at most 15 MB, in 15 MB parts $2.part-? up to 45 MB
# (what a call can bring back), else without the weights (metrics, evals and logs only).
pack_back() {
  local dir=$1 name=$2
  tar czf "/tmp/$name" -C "$dir" . && ls -la "/tmp/$name"
  local sz
  sz=$(stat -c %s "/tmp/$name")
  if [ "$sz" -le $((15 * 1024 * 1024)) ]; then
    cp "/tmp/$name" "$OUT/$name"
  elif [ "$sz" -le $((45 * 1024 * 1024)) ]; then
    split -b 15M -a 1 "/tmp/$name" "$OUT/$name.part-"
  else
    echo "$name is $sz bytes: too large to bring back; keeping everything but the weights"
    tar czf "$OUT/$name" -C "$dir" --exclude='*.bin' --exclude='*.safetensors' .
  fi
}

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
      pack_back /tmp/run run.tgz
      find /tmp/run -name '*.jsonl' | head -3 | while read -r f; do echo "$f:"; tail -2 "$f"; done
    fi
  else
    echo "no time left to train ($(left)s left)"
  fi
fi

# One config of the sweep: train its decoder on a copy of the base's CLIP and prior until SIGINT
# after $3 seconds (or --sweep-steps), export it in float16, score it on both splits.
sweep_one() {
  local cfg=$1 name=$2 train_s=$3 dir=/tmp/sweep/$2 keep=/tmp/sweep_out/$2
  mkdir -p "$dir" "$keep"
  cp -r "$SWEEP_BASE/clip" "$SWEEP_BASE/prior" "$SWEEP_BASE/probe" "$dir/"
  cp "$cfg" "$keep/"
  timeout -s INT -k 30 "$train_s" "${DRUN[@]}" tasks/train.ts decoder --backend "$SWEEP_BACKEND" \
    --config "$cfg" --out "$dir" ${SWEEP_STEPS:+--max-steps "$SWEEP_STEPS"} >"$keep/train.log" 2>&1
  echo "train rc $?" >>"$keep/train.log"
  cp "$dir/decoder/metrics.jsonl" "$keep/" 2>/dev/null
  "${DRUN[@]}" tasks/export.ts --checkpoint "$dir" --out "$keep/weights" --half >"$keep/export.log" 2>&1 ||
    { echo "$name: export failed"; return 1; }
  for split in test zeroshot; do # both at once: the probe is cached, nothing is shared
    { timeout -k 5 "$(cap 120)" "${DRUN[@]}" tasks/eval.ts pipeline --backend "$SWEEP_BACKEND" \
      --checkpoint "$keep/weights" --split "$split" ${SWEEP_LIMIT:+--limit "$SWEEP_LIMIT"} \
      --out "$keep/eval_pipeline_$split.json" >"$keep/eval_$split.log" 2>&1 ||
      echo "$name: eval $split failed (rc $?)"; } &
  done
  wait
  # The base's stages and probe are in the repository: bring back the decoder only.
  rm -rf "$keep/weights/clip" "$keep/weights/prior" "$keep/weights/probe"
}

if [ -n "$SWEEP" ] && [ $HW -eq 1 ]; then
  IFS=, read -r -a CONFIGS <<<"$SWEEP"
  t=$(($(left) - 200)) # 200 s: graceful stop, export, two evals, packing
  if [ $t -gt 20 ]; then
    step "decoder sweep of ${#CONFIGS[@]} configs on $SWEEP_BASE (training stopped after ${t}s)"
    pids=()
    for cfg in "${CONFIGS[@]}"; do
      name=$(basename "$cfg" .jsonc)
      sweep_one "$cfg" "$name" "$t" &
      pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || FAIL=1; done
    pack_back /tmp/sweep_out sweep.tgz
    deno eval --cached-only --node-modules-dir=manual '
      const pct = (x) => (x === undefined ? "-" : (100 * x).toFixed(1)).padStart(5);
      console.log("config                              steps  exact  colour  shape  count  pixels  lenient  zs exact");
      for (const e of [...Deno.readDirSync("/tmp/sweep_out")].sort((a, b) => a.name < b.name ? -1 : 1)) {
        const read = (f) => { try { return JSON.parse(Deno.readTextFileSync(`/tmp/sweep_out/${e.name}/${f}`)); } catch { return undefined; } };
        const t = read("eval_pipeline_test.json"), z = read("eval_pipeline_zeroshot.json");
        const g = t?.probe?.generated ?? {};
        console.log(`${e.name.padEnd(34)} ${String(t?.modelSteps?.decoder ?? "-").padStart(6)}  ${pct(g.exact)}  ${pct(g.colour)}  ${pct(g.shape)}  ${pct(g.count)}   ${pct(t?.probe?.figuresCounted?.generated?.right)}  ${pct(g.lenient)}    ${pct(z?.probe?.generated?.exact)}`);
      }'
  else
    echo "no time left for the sweep ($(left)s left)"
  fi
fi

step "done in $((SECONDS - START))s, status $FAIL"
ls -la "$OUT"
exit $FAIL
