/**
 * JSON with comments and trailing commas (the config file format).
 *
 * @module
 */
import { ConfigError } from "./errors.ts";

/**
 * JSON with comments (`//`, `/* *\/`) and trailing commas, turned into plain JSON. Comments and
 * removed commas become spaces, so line and column numbers are unchanged.
 *
 * @example
 * ```ts
 * JSON.parse(stripJsonc('{ "a": 1, // one\n }')); // { a: 1 }
 * ```
 */
export function stripJsonc(text: string): string {
  const out = text.split("");
  const n = text.length;
  let i = 0;
  let lastComma = -1; // index of a comma that may turn out to be trailing
  while (i < n) {
    const c = text[i];
    if (c === '"') {
      lastComma = -1;
      i++;
      while (i < n && text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
      i++;
    } else if (c === "/" && text[i + 1] === "/") {
      while (i < n && text[i] !== "\n") out[i++] = " ";
    } else if (c === "/" && text[i + 1] === "*") {
      const end = text.indexOf("*/", i + 2);
      const stop = end < 0 ? n : end + 2;
      for (; i < stop; i++) if (text[i] !== "\n") out[i] = " ";
    } else {
      if (c === ",") lastComma = i;
      else if ((c === "}" || c === "]") && lastComma >= 0) out[lastComma] = " ";
      if (!/\s/.test(c) && c !== ",") lastComma = -1;
      i++;
    }
  }
  return out.join("");
}

/**
 * Parses JSONC text; a syntax error becomes a `ConfigError` with the line and column.
 *
 * @example
 * ```ts
 * parseJsonc("{ /* c *\/ \"a\": [1, 2,], }", "x.jsonc"); // { a: [1, 2] }
 * ```
 */
export function parseJsonc(text: string, sourceName = "config"): unknown {
  const plain = stripJsonc(text);
  try {
    return JSON.parse(plain);
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    const pos = /position (\d+)/.exec(message);
    let where = "";
    if (pos) {
      const before = plain.slice(0, Number(pos[1])).split("\n");
      where = ` at line ${before.length}, column ${before[before.length - 1].length + 1}`;
    }
    throw new ConfigError(`${sourceName}: invalid JSON${where}: ${message.split("\n")[0]}`);
  }
}
