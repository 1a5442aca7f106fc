/**
 * The experiments' report: reads each `<run>/experiments/<name>/<name>.json` written by
 * `deno task experiment` and the training loss logs (`<run>/<stage>/metrics.jsonl`), and renders
 * one self-contained HTML page (PNG figures inlined as data URLs, charts as inline SVG) and a
 * Markdown page that links the figure files. One file per job, re-exported here:
 *
 * - `report_input.ts`: finding the experiments' results and charting the training loss;
 * - `report_tables.ts`: each experiment's numbers as tables;
 * - `report_pages.ts`: the HTML and Markdown pages.
 *
 * @module
 */
export {
  type ExperimentDoc,
  findExperiments,
  type FoundExperiment,
  lossChart,
  type ReportInput,
} from "./report_input.ts";
export { experimentTables, type Table } from "./report_tables.ts";
export { FEATURE_NOTE, renderHtml, renderMarkdown } from "./report_pages.ts";
