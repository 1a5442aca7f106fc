/**
 * `deno run -A tools/gpu/adapter.ts [OUT.json]`: prints the WebGPU adapter Deno finds (name,
 * vendor, architecture, software or not), its features (shader-f16, subgroups, timestamp-query
 * flagged) and every limit, and writes them as JSON to OUT.json when given.
 *
 * Exit status: 0 a hardware adapter, 3 only a software/fallback adapter (llvmpipe, lavapipe),
 * 2 no adapter at all. run.sh uses this to decide whether to point the loader at NVIDIA's ICD.
 *
 * @module
 */

const WATCH = ["shader-f16", "subgroups", "timestamp-query"];

function limitsOf(l: GPUSupportedLimits): Record<string, number> {
  const out: Record<string, number> = {};
  // Limits are getters on the prototype, so Object.keys(l) is empty.
  let proto: object | null = Object.getPrototypeOf(l);
  while (proto && proto !== Object.prototype) {
    for (const k of Object.getOwnPropertyNames(proto)) {
      if (k === "constructor" || k in out) continue;
      const v = (l as unknown as Record<string, unknown>)[k];
      if (typeof v === "number") out[k] = v;
    }
    proto = Object.getPrototypeOf(proto);
  }
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => a.localeCompare(b)));
}

async function main(): Promise<number> {
  const outPath = Deno.args[0];
  const env: Record<string, string | undefined> = {};
  for (const k of ["VK_DRIVER_FILES", "VK_ICD_FILENAMES", "LD_LIBRARY_PATH"]) {
    env[k] = Deno.env.get(k);
  }
  const base = { date: new Date().toISOString(), deno: Deno.version, env };
  const adapter = navigator.gpu
    ? await navigator.gpu.requestAdapter({ powerPreference: "high-performance" })
    : null;
  if (!adapter) {
    console.log("adapter: none");
    if (outPath) {
      await Deno.writeTextFile(outPath, JSON.stringify({ ...base, adapter: null }, null, 2));
    }
    return 2;
  }
  const info = adapter.info;
  const features = [...adapter.features].sort();
  const software = (info.isFallbackAdapter ?? false) ||
    /llvmpipe|lavapipe|swiftshader|software/i.test(`${info.description} ${info.device}`);
  const result = {
    ...base,
    adapter: {
      description: info.description,
      vendor: info.vendor,
      architecture: info.architecture,
      device: info.device,
      isFallbackAdapter: info.isFallbackAdapter ?? false,
      software,
    },
    watched: Object.fromEntries(WATCH.map((f) => [f, adapter.features.has(f as GPUFeatureName)])),
    features,
    limits: limitsOf(adapter.limits),
  };
  console.log(
    `adapter: ${info.description || info.device || "?"} (vendor ${info.vendor || "?"}, ` +
      `architecture ${info.architecture || "?"}, ${software ? "software" : "hardware"})`,
  );
  console.log(`features: ${features.join(", ") || "none"}`);
  console.log(
    `watched: ${WATCH.map((f) => `${f}=${adapter.features.has(f as GPUFeatureName)}`).join(" ")}`,
  );
  const lim = result.limits;
  console.log(
    `limits: maxBufferSize=${lim.maxBufferSize} maxStorageBufferBindingSize=` +
      `${lim.maxStorageBufferBindingSize} maxComputeWorkgroupStorageSize=` +
      `${lim.maxComputeWorkgroupStorageSize} maxComputeInvocationsPerWorkgroup=` +
      `${lim.maxComputeInvocationsPerWorkgroup}`,
  );
  if (outPath) await Deno.writeTextFile(outPath, JSON.stringify(result, null, 2));
  return software ? 3 : 0;
}

Deno.exit(await main());
