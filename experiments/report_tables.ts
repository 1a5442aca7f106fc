/**
 * The tables of the experiments' report: one experiment's JSON results as rows of text, one
 * layout per experiment, shared by the HTML and the Markdown page.
 *
 * @module
 */
import type { ExperimentDoc } from "./report_input.ts";

/** A table of a report section. */
export interface Table {
  head: string[];
  rows: string[][];
}

const pct = (x: number | null | undefined): string =>
  typeof x === "number" ? `${(x * 100).toFixed(1)}%` : "-";
const num = (x: number | null | undefined, digits = 4): string =>
  typeof x === "number" ? x.toFixed(digits) : "-";

/** The tables of one experiment's numbers. */
export function experimentTables(doc: ExperimentDoc): Table[] {
  const r = doc.results;
  switch (doc.experiment) {
    case "guidance": {
      const n = r.metricNames ?? {};
      const head = ["s", n.fid, n.kid, n.precision, n.recall, n.f1, "probe exact"];
      const rows = (r.scales ?? []).map((s: Record<string, number | null>) => [
        String(s.scale),
        num(s.fid),
        num(s.kid, 5),
        num(s.precision, 3),
        num(s.recall, 3),
        num(s.f1, 3),
        pct(s.probeExact),
      ]);
      const tables = [{ head, rows }];
      if (r.realProbe) {
        tables.push({
          head: [
            "ground-truth probe on the real test images (its ceiling)",
            "exact",
            "colours",
            "shapes",
            "count",
          ],
          rows: [[
            "real",
            pct(r.realProbe.exact),
            pct(r.realProbe.colour),
            pct(r.realProbe.shape),
            pct(r.realProbe.count),
          ]],
        });
      }
      return tables;
    }
    case "pca":
      return [{
        head: ["explained variance", "ours", "thesis Figure 4.4"],
        rows: [
          ["PC1", pct(r.explainedVariance?.pc1), pct(r.thesis?.pc1)],
          ["PC2", pct(r.explainedVariance?.pc2), pct(r.thesis?.pc2)],
        ],
      }];
    case "interpolate":
      return [{
        head: ["t", "cos(frame, A)", "cos(frame, B)"],
        rows: (r.frames ?? []).map((f: Record<string, number>) => [
          num(f.t, 3),
          num(f.cosineToA, 3),
          num(f.cosineToB, 3),
        ]),
      }];
    case "knn":
      return [
        {
          head: ["mean cosine distance to the nearest training image", "value"],
          rows: [
            [`samples (${r.samples})`, num(r.samplesMeanNearest)],
            ["real test images (new by construction)", num(r.realTestMeanNearest)],
            ["samples that copy a training image (distance < 1e-4)", String(r.samplesExactCopies)],
          ],
        },
        {
          head: ["sample caption", "nearest training captions (cosine distance)"],
          rows: (r.rows ?? []).slice(0, 16).map((
            row: { caption: string; neighbours: { caption: string; distance: number }[] },
          ) => [
            row.caption,
            row.neighbours.map((n) => `${n.caption} (${num(n.distance)})`).join("; "),
          ]),
        },
      ];
    case "textdiff":
      return [{
        head: [
          "r",
          "cos(frame, original caption)",
          "cos(frame, new caption)",
          "probe: original",
          "probe: new",
        ],
        rows: (r.steps ?? []).map((s: Record<string, number | null>) => [
          num(s.r, 2),
          num(s.cosineToFrom, 3),
          num(s.cosineToTo, 3),
          pct(s.probeFrom),
          pct(s.probeTo),
        ]),
      }];
    case "arithmetic":
      return [{
        head: [
          "equation",
          "cos(prior z, text D): arithmetic",
          "direct",
          "probe exact: arithmetic",
          "direct",
        ],
        rows: (r.equations ?? []).map((
          e: {
            equation: string;
            cosineToExpected: { arithmetic: number; direct: number };
            probe: { arithmetic: { exact: number }; direct: { exact: number } } | null;
          },
        ) => [
          e.equation,
          num(e.cosineToExpected?.arithmetic, 3),
          num(e.cosineToExpected?.direct, 3),
          pct(e.probe?.arithmetic.exact),
          pct(e.probe?.direct.exact),
        ]),
      }];
    case "binding": {
      type Row = {
        conditioning: string;
        decoderSteps: number;
        twoObjects: Record<string, number>;
        oneObject: Record<string, number>;
      };
      const line = (name: string, steps: string, x: Row["twoObjects"], y: Row["oneObject"]) => [
        name,
        steps,
        pct(x.exact),
        pct(x.colour),
        pct(x.shape),
        pct(x.misbound),
        pct(y.exact),
      ];
      return [{
        head: [
          "decoder conditioned on",
          "decoder steps",
          "two objects: exact",
          "colours",
          "shapes",
          "misbound",
          "one object: exact",
        ],
        rows: [
          ...(r.decoders ?? []).map((d: Row) =>
            line(d.conditioning, String(d.decoderSteps), d.twoObjects, d.oneObject)
          ),
          ...(r.real
            ? [line("real images (probe ceiling)", "-", r.real.twoObjects, r.real.oneObject)]
            : []),
        ],
      }];
    }
    case "zeroshot": {
      const row = (task: string, g: Record<string, number> | undefined, ref: string) => [
        task,
        pct(g?.exact),
        pct(g?.colour),
        pct(g?.shape),
        pct(g?.count),
        ref,
      ];
      return [
        {
          head: ["task (exact match)", "exact", "colours", "shapes", "count", "reference"],
          rows: [
            row(
              `unseen pairs (${r.unseenPairs?.captions})`,
              r.unseenPairs?.generated,
              `real images ${pct(r.unseenPairs?.real?.exact)}`,
            ),
            row(
              `rephrased, e.g. "${r.rephrased?.example?.rephrased}"`,
              r.rephrased?.generated,
              `original wording ${pct(r.rephrased?.originalWording?.exact)}`,
            ),
          ],
        },
        {
          head: ["task (attribute drawn)", "rate", "one figure"],
          rows: [
            [
              `shape only, e.g. "${r.partial?.shapeOnly?.example}"`,
              pct(r.partial?.shapeOnly?.shapeDrawn),
              pct(r.partial?.shapeOnly?.oneFigure),
            ],
            [
              `colour only, e.g. "${r.partial?.colourOnly?.example}"`,
              pct(r.partial?.colourOnly?.colourDrawn),
              pct(r.partial?.colourOnly?.oneFigure),
            ],
          ],
        },
        {
          head: ["three objects", "1st pair drawn", "2nd", "3rd", "all three"],
          rows: [[
            `e.g. "${r.threeObjects?.example}"`,
            ...(r.threeObjects?.pairDrawn ?? []).map(pct),
            pct(r.threeObjects?.allThree),
          ]],
        },
      ];
    }
    default:
      return [];
  }
}
