/**
 * The few path operations the sampling path needs, for file paths and URLs alike, without
 * `node:path` (which a browser does not have). Both separators are understood so Windows paths
 * work; joining uses "/", which Deno accepts on every platform and URLs require.
 *
 * @module
 */

/** `base` and `parts` joined with "/" (trailing separators of the left side dropped). */
export function joinPath(base: string, ...parts: string[]): string {
  let out = base;
  for (const part of parts) {
    if (part === "") continue;
    out = out === "" ? part : `${out.replace(/[\\/]+$/, "")}/${part}`;
  }
  return out;
}

/** Index of the last separator ("/" or "\\"), -1 when none. */
function lastSeparator(path: string): number {
  return Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
}

/** The folder part of a path ("." when there is none, as node:path's dirname). */
export function dirnamePath(path: string): string {
  const trimmed = path.length > 1 ? path.replace(/[\\/]+$/, "") : path;
  const i = lastSeparator(trimmed);
  if (i < 0) return ".";
  return i === 0 ? trimmed[0] : trimmed.slice(0, i);
}

/** The last segment of a path. */
export function basenamePath(path: string): string {
  const trimmed = path.replace(/[\\/]+$/, "");
  return trimmed.slice(lastSeparator(trimmed) + 1);
}

/** Whether `path` is absolute: "/x", "C:\\x", "C:/x" or a UNC path "\\\\host\\share". */
export function isAbsolutePath(path: string): boolean {
  return /^([\\/]|[A-Za-z]:[\\/])/.test(path);
}

/** Whether `location` is an http(s) URL (weights served over the network). */
export function isHttpUrl(location: string): boolean {
  return /^https?:\/\//i.test(location);
}

/**
 * The `file:` URL of an absolute path, percent-encoding what URLs need (the pathname setter
 * encodes "#", "?" and spaces: https://url.spec.whatwg.org/#path-percent-encode-set).
 */
export function fileUrlOf(absolutePath: string): string {
  const url = new URL("file:///");
  const slashed = absolutePath.replace(/\\/g, "/");
  if (slashed.startsWith("//")) { // UNC: //host/share/x
    const [host, ...rest] = slashed.slice(2).split("/");
    url.hostname = host;
    url.pathname = "/" + rest.join("/");
  } else {
    url.pathname = slashed.startsWith("/") ? slashed : `/${slashed}`;
  }
  return url.href;
}

/**
 * A module specifier as an importable URL: URLs as they are, paths resolved against `baseDir`
 * (an absolute folder path or a URL).
 */
export function resolveModuleUrl(specifier: string, baseDir: string): string {
  if (/^[a-z][a-z0-9+.-]+:/i.test(specifier)) return specifier; // a URL (not a drive letter)
  if (isAbsolutePath(specifier)) return fileUrlOf(specifier);
  const base = /^[a-z][a-z0-9+.-]+:/i.test(baseDir) ? baseDir : fileUrlOf(baseDir);
  return new URL(specifier.replace(/\\/g, "/"), base.endsWith("/") ? base : `${base}/`).href;
}
