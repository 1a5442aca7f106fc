/**
 * Charts of the experiments and the report as SVG, rendered headlessly by Vega-Lite + Vega
 * (pinned in ./plot_deps.ts): a spec goes in, an SVG string comes out. The builders below are
 * the chart types the experiments use; any Vega-Lite spec can be rendered with `renderSvg`.
 *
 * @module
 */
import { compileVegaLite, vega, type VegaLiteSpec } from "./plot_deps.ts";

const SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json";

/**
 * Renders a Vega-Lite spec (inline data only: nothing is fetched) to a standalone SVG string.
 *
 * @example
 * ```ts
 * const svg = await renderSvg({
 *   data: { values: [{ x: 1, y: 2 }] },
 *   mark: "point",
 *   encoding: { x: { field: "x", type: "quantitative" }, y: { field: "y", type: "quantitative" } },
 * });
 * svg.startsWith("<svg"); // true
 * ```
 */
export async function renderSvg(spec: Record<string, unknown>): Promise<string> {
  const full = { $schema: SCHEMA, background: "white", ...spec } as unknown as VegaLiteSpec;
  const compiled = compileVegaLite(full).spec;
  // A loader that refuses every URL: charts are built from inline values only.
  const loader = vega.loader();
  loader.load = () => Promise.reject(new Error("charts use inline data only"));
  const view = new vega.View(vega.parse(compiled), { renderer: "none", loader });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** One point of a line chart: x, y and the series it belongs to. */
export interface LinePoint {
  x: number;
  y: number;
  series: string;
}

/**
 * Small multiples of line charts, one panel per series with its own y scale (e.g. every metric
 * against the guidance scale).
 *
 * @example
 * ```ts
 * const points = [
 *   { x: 1, y: 3.2, series: "FID" },
 *   { x: 3, y: 2.1, series: "FID" },
 *   { x: 1, y: 0.61, series: "recall" },
 *   { x: 3, y: 0.48, series: "recall" },
 * ];
 * const svg = await linePanels(points, { x: "guidance scale s", title: "Metrics by guidance" });
 * ```
 */
export function linePanels(
  points: readonly LinePoint[],
  labels: { x: string; title?: string; columns?: number },
): Promise<string> {
  return renderSvg({
    ...(labels.title && { title: labels.title }),
    data: { values: points },
    // Panels in the order the series first appear (not alphabetical).
    facet: {
      field: "series",
      type: "nominal",
      title: null,
      sort: [...new Set(points.map((p) => p.series))],
    },
    columns: labels.columns ?? 3,
    resolve: { scale: { y: "independent" } },
    spec: {
      width: 160,
      height: 110,
      mark: { type: "line", point: true },
      encoding: {
        x: { field: "x", type: "quantitative", title: labels.x, scale: { zero: false } },
        y: { field: "y", type: "quantitative", title: null, scale: { zero: false } },
      },
    },
  });
}

/** One point of a scatter plot. */
export interface ScatterPoint {
  x: number;
  y: number;
  /** The category that picks the colour. */
  group: string;
  /** "image" (circles) or "text" (crosses). */
  kind: string;
  /** Tooltip text (kept in the SVG's title elements). */
  label?: string;
}

/**
 * A scatter plot coloured by `group` with marker shapes by `kind`; `colours` maps groups to CSS
 * colours (else Vega's category palette).
 *
 * @example
 * ```ts
 * const points = [
 *   { x: 0.5, y: -1.2, group: "circle", kind: "image" },
 *   { x: -0.8, y: 0.3, group: "square", kind: "text" },
 * ];
 * const svg = await scatter(
 *   points,
 *   { x: "PC1 (12.3%)", y: "PC2 (10.1%)", legend: "shape" },
 *   { circle: "#d62728", square: "#1f77b4" },
 * );
 * ```
 */
export function scatter(
  points: readonly ScatterPoint[],
  labels: { x: string; y: string; legend: string; title?: string },
  colours?: Record<string, string>,
): Promise<string> {
  const domain = [...new Set(points.map((p) => p.group))];
  return renderSvg({
    ...(labels.title && { title: labels.title }),
    width: 420,
    height: 360,
    data: { values: points },
    mark: {
      type: "point",
      filled: true,
      size: 30,
      opacity: 0.8,
      stroke: "#555555",
      strokeWidth: 0.4,
    },
    encoding: {
      x: { field: "x", type: "quantitative", title: labels.x },
      y: { field: "y", type: "quantitative", title: labels.y },
      color: {
        field: "group",
        type: "nominal",
        title: labels.legend,
        ...(colours && { scale: { domain, range: domain.map((g) => colours[g] ?? "#888888") } }),
      },
      shape: { field: "kind", type: "nominal", title: "embedding" },
      tooltip: { field: "label", type: "nominal" },
    },
  });
}

/** One bar of a grouped bar chart. */
export interface BarPoint {
  /** The group (one slot on the x axis). */
  group: string;
  /** The bar within its group (picks the colour). */
  bar: string;
  value: number;
}

/**
 * Grouped bars: one slot per `group` (in order of appearance), one coloured bar per `bar` in it.
 *
 * @example
 * ```ts
 * const svg = await barChart([
 *   { group: "unseen pairs", bar: "generated", value: 0.4 },
 *   { group: "unseen pairs", bar: "real", value: 0.9 },
 * ], { y: "rate" });
 * ```
 */
export function barChart(
  points: readonly BarPoint[],
  labels: { y: string; title?: string },
): Promise<string> {
  return renderSvg({
    ...(labels.title && { title: labels.title }),
    width: { step: 22 },
    height: 220,
    data: { values: points },
    mark: { type: "bar" },
    encoding: {
      x: {
        field: "group",
        type: "nominal",
        title: null,
        sort: [...new Set(points.map((p) => p.group))],
        axis: { labelAngle: -30, labelLimit: 220 },
      },
      xOffset: { field: "bar", type: "nominal", sort: [...new Set(points.map((p) => p.bar))] },
      y: { field: "value", type: "quantitative", title: labels.y },
      color: {
        field: "bar",
        type: "nominal",
        title: null,
        sort: [...new Set(points.map((p) => p.bar))],
      },
      tooltip: { field: "value", type: "quantitative", format: ".3f" },
    },
  });
}
