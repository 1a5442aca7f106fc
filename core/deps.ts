/**
 * The only place npm packages enter the project. Versions are pinned so that a URL import of
 * `mod.ts` resolves to exactly what the tests ran against (JSR is not used: it is not reachable from the project's machines).
 */
export { decode as decodePng, encode as encodePng } from "npm:fast-png@8.0.0";
export { z } from "npm:zod@4.6.7";
