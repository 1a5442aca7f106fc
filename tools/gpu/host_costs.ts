/**
 * `deno run -A tools/gpu/host_costs.ts [--n N]`: what the host pays, in Deno's WebGPU, for the
 * calls a kernel launch of the engine makes (core/tensor/webgpu_backend.ts: a bind group, cached
 * since 2026-12-04, setPipeline, setBindGroup, dispatchWorkgroups, a submit every 512 launches),
 * and what a device round trip costs (onSubmittedWorkDone, mapAsync of 4 bytes). On a real GPU a
 * training step of ~1,000-2,000 launches can be bound by these host costs rather than by the
 * kernels; tasks/bench.ts --timing pipelined reports a step's host time beside its device time,
 * and this splits the host time into its parts. Prints one line per measurement (microseconds).
 *
 * @module
 */
import { parseArgs } from "node:util";

const { values } = parseArgs({ args: Deno.args, options: { n: { type: "string" } } });
const N = Number(values.n ?? 20000);

const adapter = await navigator.gpu?.requestAdapter({ powerPreference: "high-performance" });
if (!adapter) {
  console.log("host_costs: no WebGPU adapter");
  Deno.exit(2);
}
const device = await adapter.requestDevice();
const info = adapter.info;
console.log(`host_costs: ${info.vendor} ${info.description || info.device} (N = ${N})`);

// The smallest kernel with the engine's binding shape: two read-only inputs, one output.
const module = device.createShaderModule({
  code: `
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3u) {
  if (id.x < arrayLength(&c)) { c[id.x] = a[id.x] + b[id.x]; }
}`,
});
const pipeline = device.createComputePipeline({
  layout: "auto",
  compute: { module, entryPoint: "main" },
});
const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
const buffers = Array.from({ length: 8 }, () => device.createBuffer({ size: 4096, usage }));
const entriesFor = (i: number): GPUBindGroupEntry[] =>
  [0, 1, 2].map((binding) => ({
    binding,
    resource: { buffer: buffers[(i + binding) % buffers.length] },
  }));
const layout = pipeline.getBindGroupLayout(0);
const bindGroup = (i: number) => device.createBindGroup({ layout, entries: entriesFor(i) });

/** Microseconds per call of `fn` over `n` calls. */
function perCall(n: number, fn: (i: number) => void): number {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) fn(i);
  return ((performance.now() - t0) * 1000) / n;
}
const line = (what: string, us: number) =>
  console.log(`${what.padEnd(58)} ${us.toFixed(2).padStart(9)} us`);

// warm-up
for (let i = 0; i < 100; i++) bindGroup(i);
await device.queue.onSubmittedWorkDone();

line("getBindGroupLayout(0)", perCall(N, () => pipeline.getBindGroupLayout(0)));
line("createBindGroup (3 buffers)", perCall(N, (i) => bindGroup(i)));
{
  const groups = Array.from({ length: 64 }, (_, i) => bindGroup(i));
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  line(
    "setPipeline + setBindGroup + dispatchWorkgroups (recorded)",
    perCall(N, (i) => {
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, groups[i % 64]);
      pass.dispatchWorkgroups(16);
    }),
  );
  pass.end();
  const t0 = performance.now();
  device.queue.submit([encoder.finish()]);
  line(
    `finish + submit of those ${N} dispatches, per dispatch`,
    ((performance.now() - t0) * 1000) / N,
  );
  const t1 = performance.now();
  await device.queue.onSubmittedWorkDone();
  line(`device time of those ${N} dispatches, per dispatch`, ((performance.now() - t1) * 1000) / N);
}
{
  // A launch as the engine makes it without its bind-group cache: a fresh bind group each, a
  // submit every 512 launches.
  const t0 = performance.now();
  let encoder = device.createCommandEncoder();
  let pass = encoder.beginComputePass();
  for (let i = 0; i < N; i++) {
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup(i));
    pass.dispatchWorkgroups(16);
    if ((i + 1) % 512 === 0) {
      pass.end();
      device.queue.submit([encoder.finish()]);
      encoder = device.createCommandEncoder();
      pass = encoder.beginComputePass();
    }
  }
  pass.end();
  device.queue.submit([encoder.finish()]);
  const host = performance.now() - t0;
  await device.queue.onSubmittedWorkDone();
  const total = performance.now() - t0;
  line("uncached launch, host (bind group each, submit per 512)", (host * 1000) / N);
  line("uncached launch, to device completion", (total * 1000) / N);
}
line(
  "writeBuffer 4 KiB",
  perCall(N / 10, (i) => device.queue.writeBuffer(buffers[i % 8], 0, new Float32Array(1024))),
);
await device.queue.onSubmittedWorkDone();

async function roundTrips(what: string, fn: () => Promise<unknown>): Promise<void> {
  const samples: number[] = [];
  for (let i = 0; i < 20; i++) {
    const t0 = performance.now();
    await fn();
    samples.push((performance.now() - t0) * 1000);
  }
  samples.sort((a, b) => a - b);
  line(`${what} (median of 20)`, samples[10]);
}
await roundTrips("onSubmittedWorkDone, nothing queued", () => device.queue.onSubmittedWorkDone());
await roundTrips("submit 1 dispatch + onSubmittedWorkDone", () => {
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, bindGroup(0));
  pass.dispatchWorkgroups(16);
  pass.end();
  device.queue.submit([encoder.finish()]);
  return device.queue.onSubmittedWorkDone();
});
await roundTrips("copy 4 bytes + mapAsync(READ)", async () => {
  const staging = device.createBuffer({
    size: 4,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const encoder = device.createCommandEncoder();
  encoder.copyBufferToBuffer(buffers[0], 0, staging, 0, 4);
  device.queue.submit([encoder.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  staging.unmap();
  staging.destroy();
});
device.destroy();
