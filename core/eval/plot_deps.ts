/**
 * The npm packages of the reporting code (plots), pinned here and NOT in core/deps.ts so that
 * the engine's import graph (mod.ts) stays small: only the experiment and report tasks load
 * them. Vega-Lite compiles a chart specification to Vega; Vega renders it to an SVG string
 * without a browser (`View.toSVG()` with the "none" renderer).
 *
 * @module
 */
export * as vega from "npm:vega@6.4.0";
export { compile as compileVegaLite } from "npm:vega-lite@6.5.0";
export type { TopLevelSpec as VegaLiteSpec } from "npm:vega-lite@6.5.0";
