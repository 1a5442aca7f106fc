/**
 * Acquiring the WebGPU device. One device per process, requested once with the adapter's own
 * limits so large models are not held back by the conservative WebGPU defaults.
 */

/** What the engine knows about the adapter it runs on. */
export interface AdapterSummary {
  description: string;
  vendor: string;
  architecture: string;
  isFallbackAdapter: boolean;
  features: string[];
  limits: Record<string, number>;
}

let devicePromise: Promise<GPUDevice> | null = null;
let adapterPromise: Promise<GPUAdapter | null> | null = null;
let summary: AdapterSummary | null = null;

/** Thrown when no WebGPU adapter exists; its message says how to get one. */
export class NoAdapterError extends Error {
  constructor() {
    super(
      "No WebGPU adapter found: run on the CPU (--backend cpu or auto), or install your GPU's " +
        "Vulkan driver (or Mesa's software adapter: apt-get install mesa-vulkan-drivers " +
        "libvulkan1) and run again.",
    );
    this.name = "NoAdapterError";
  }
}

const LIMITS_TO_RAISE = [
  "maxBufferSize",
  "maxStorageBufferBindingSize",
  "maxStorageBuffersPerShaderStage",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupSizeY",
  "maxComputeWorkgroupsPerDimension",
  "maxBindGroups",
] as const;

/**
 * The WebGPU adapter, or null when the runtime has no WebGPU or no adapter (asked once).
 *
 * @example
 * ```ts
 * async function isSoftware(): Promise<boolean | undefined> {
 *   const adapter = await getAdapter();
 *   return adapter?.info.isFallbackAdapter;
 * }
 * ```
 */
export function getAdapter(): Promise<GPUAdapter | null> {
  adapterPromise ??= (async () => {
    if (!("gpu" in navigator) || !navigator.gpu) return null;
    const restore = quietVulkanLoader();
    try {
      return await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
    } finally {
      restore();
    }
  })();
  return adapterPromise;
}

/**
 * Mesa's Vulkan drivers print "error: XDG_RUNTIME_DIR is invalid or not set" when that variable
 * is missing (common in containers and CI), which reads like a failure although nothing is wrong.
 * While the adapter is requested, point it at a private empty folder; returns the undo.
 */
function quietVulkanLoader(): () => void {
  try {
    if (typeof Deno === "undefined" || Deno.env.get("XDG_RUNTIME_DIR")) return () => {};
    const dir = Deno.makeTempDirSync({ prefix: "unclip-xdg-" });
    Deno.env.set("XDG_RUNTIME_DIR", dir);
    return () => {
      Deno.env.delete("XDG_RUNTIME_DIR");
      try {
        Deno.removeSync(dir);
      } catch { /* already gone */ }
    };
  } catch {
    return () => {}; // no env or write permission: leave things as they are
  }
}

async function requestDevice(): Promise<GPUDevice> {
  const adapter = await getAdapter();
  if (!adapter) throw new NoAdapterError();
  const requiredLimits: Record<string, number> = {};
  for (const name of LIMITS_TO_RAISE) requiredLimits[name] = adapter.limits[name];
  const wanted = ["shader-f16", "timestamp-query"] as GPUFeatureName[];
  const requiredFeatures = wanted.filter((f) => adapter.features.has(f));
  const device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  const info = adapter.info;
  const limits: Record<string, number> = {};
  for (const name of LIMITS_TO_RAISE) limits[name] = device.limits[name];
  summary = {
    // Chrome leaves description (and device) empty for privacy; vendor and architecture remain.
    description: info.description || info.device ||
      [info.vendor, info.architecture].filter(Boolean).join(" ") || "unknown adapter",
    vendor: info.vendor,
    architecture: info.architecture,
    isFallbackAdapter: info.isFallbackAdapter ?? false,
    features: [...adapter.features].sort(),
    limits,
  };
  device.lost.then((lost) => {
    if (lost.reason !== "destroyed") console.error(`WebGPU device lost: ${lost.message}`);
  });
  return device;
}

/**
 * The process-wide GPU device, created on first use.
 *
 * @example
 * ```ts
 * async function describe(): Promise<string | undefined> {
 *   await getDevice();
 *   return adapterSummary()?.description;
 * }
 * ```
 */
export function getDevice(): Promise<GPUDevice> {
  devicePromise ??= requestDevice();
  return devicePromise;
}

/** The adapter's description, features and limits, once `getDevice()` has resolved. */
export function adapterSummary(): AdapterSummary | null {
  return summary;
}

/** A one-line description of the adapter, e.g. for the first line of a task's output. */
export function adapterLine(): string {
  if (!summary) return "no WebGPU device yet";
  const kind = summary.isFallbackAdapter ? "software" : "hardware";
  return `${summary.description} (${kind}; features: ${summary.features.join(", ") || "none"})`;
}
