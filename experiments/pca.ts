/**
 * `experiment pca` (thesis Figure 4.4): the trained CLIP's image embeddings of the test set on
 * their first two principal components, coloured by shape and by colour, with the captions'
 * text embeddings projected onto the same axes; the share of variance PC1 and PC2 explain
 * (thesis: 12.27% and 10.08%).
 *
 * @module
 */
import { join } from "node:path";
import { loadClip, revalidateStoredConfig } from "../core/pipeline.ts";
import { loadCheckpoint } from "../core/train/checkpoint.ts";
import { COLOURS } from "../datasets/mod.ts";
import { imagesToNchw } from "../core/data/images.ts";
import { imageEmbeddings, pca, textEmbeddings } from "../core/eval/embed.ts";
import { scatter, type ScatterPoint } from "../core/eval/plot.ts";
import { type Experiment, loadSplit, round } from "./common.ts";

/** Thesis Figure 4.4: variance explained by PC1 and PC2 of the test image embeddings. */
export const THESIS_PCA = Object.freeze({ pc1: 0.1227, pc2: 0.1008 });

/** The pca experiment. */
export const pcaExperiment: Experiment = {
  name: "pca",
  thesis: "Figure 4.4",
  summary: "test-set CLIP image embeddings on their first two principal components",
  stages: ["clip"],
  draws: "nothing",
  flags: {},
  async run(ctx) {
    const ckpt = await loadCheckpoint(join(ctx.checkpoint, "clip"), "clip");
    const config = await revalidateStoredConfig(ckpt.meta.config, ctx.registry, ckpt.dir);
    const data = await loadSplit(config, ctx.registry, "test", ctx.limit);
    const { clip, tokenizer } = await loadClip(ckpt, config, ctx.registry);
    try {
      const captions = data.map((d) => d.caption);
      const images = await imageEmbeddings(clip, imagesToNchw(data), data.length);
      const texts = await textEmbeddings(clip, tokenizer, captions);
      const fit = pca(images, 2);
      const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
      ctx.print(
        `pca: ${data.length} test images; PC1 explains ${pct(fit.explained[0])}, PC2 ` +
          `${pct(fit.explained[1])} (thesis ${pct(THESIS_PCA.pc1)}, ${pct(THESIS_PCA.pc2)})`,
      );
      const labelOf = (i: number, key: "shape" | "colour"): string => {
        const labels = data[i].labels;
        if (!labels || labels.length === 0) return "unlabelled";
        return labels.length === 1 ? labels[0][key] : "two figures";
      };
      const points = data.flatMap((d, i) => {
        const [ix, iy] = fit.project(images[i]), [tx, ty] = fit.project(texts[i]);
        return [
          { kind: "image", x: round(ix), y: round(iy), caption: d.caption, index: i },
          { kind: "text", x: round(tx), y: round(ty), caption: d.caption, index: i },
        ];
      });
      const axes = {
        x: `PC1 (${pct(fit.explained[0])} of the variance)`,
        y: `PC2 (${pct(fit.explained[1])})`,
      };
      const byKey = (key: "shape" | "colour"): ScatterPoint[] =>
        points.map((p) => ({
          x: p.x,
          y: p.y,
          kind: p.kind,
          group: labelOf(p.index, key),
          label: p.caption,
        }));
      const colours: Record<string, string> = Object.fromEntries(
        Object.entries(COLOURS).map(([name, [r, g, b]]) => [name, `rgb(${r},${g},${b})`]),
      );
      colours["two figures"] = "#bbbbbb";
      const files = [
        {
          name: "pca_shape.svg",
          data: await scatter(byKey("shape"), { ...axes, legend: "shape" }),
          caption: "CLIP embeddings of the test set on PC1/PC2 of the image embeddings, " +
            "coloured by shape; text embeddings projected onto the same axes (thesis Figure 4.4)",
        },
        {
          name: "pca_colour.svg",
          data: await scatter(byKey("colour"), { ...axes, legend: "colour" }, colours),
          caption: "The same projection coloured by the figure's colour (thesis Figure 4.4)",
        },
      ];
      return {
        results: {
          images: data.length,
          embedDim: clip.embedDim,
          explainedVariance: { pc1: round(fit.explained[0]), pc2: round(fit.explained[1]) },
          thesis: THESIS_PCA,
          points: points.map((p) => ({
            ...p,
            shape: labelOf(p.index, "shape"),
            colour: labelOf(p.index, "colour"),
          })),
          modelSteps: { clip: ckpt.meta.step },
        },
        files,
      };
    } finally {
      clip.dispose();
    }
  },
};
