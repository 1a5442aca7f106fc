/**
 * Reading the engine's environment variables (`UNCLIP_BACKEND`, `UNCLIP_CPU_KERNELS`,
 * `UNCLIP_CPU_THREADS`, `UNCLIP_CPU_WINOGRAD`) where the runtime may deny access or have no `Deno` at all (a browser).
 */

/** The variable's value, or undefined when unset, not permitted, or not running in Deno. */
export function readEnv(name: string): string | undefined {
  try {
    return typeof Deno === "undefined" ? undefined : Deno.env.get(name);
  } catch {
    return undefined; // no --allow-env
  }
}
