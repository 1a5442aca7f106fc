/**
 * The best of three: how often at least one of three single-candidate images of a test caption is
 * exactly right (the probe's per-image verdicts of `eval pipeline --rerank 1 --seeds 10-12`), beside
 * each seed alone and weights/default's CLIP-reranked choice, for all 200 test captions and by the
 * number of figures they name.
 *
 * Usage: deno run -A docs/results/clip_reranker/best_of_three.ts
 */
import { generateSplit } from "../../../datasets/mod.ts";
import { parseCaption } from "../../../datasets/captions.ts";

const here = new URL(".", import.meta.url).pathname;
const shipped = new URL("../../../weights/default/", import.meta.url).pathname;
const captions = generateSplit({ set: 1, split: "test", count: 200, size: 32 }).map((s) =>
  s.caption
);
/** The probe's exact verdict per image of one results file. */
const exact = (path: string): boolean[] =>
  [...JSON.parse(Deno.readTextFileSync(path)).probe.generated.exactByImage].map((c) => c === "1");
const single = [10, 11, 12].map((s) => exact(`${here}single_eval_pipeline_test_seed${s}.json`));
const reranked = [
  exact(`${shipped}eval_pipeline_test.json`),
  ...[1, 2, 3, 4].map((s) => exact(`${shipped}eval_pipeline_test_seed${s}.json`)),
];
const figures = captions.map((c) => parseCaption(c).length);
for (const n of [0, 1, 2]) {
  const rows = captions.map((_, i) => i).filter((i) => n === 0 || figures[i] === n);
  const rate = (right: (i: number) => boolean) =>
    `${(100 * rows.filter(right).length / rows.length).toFixed(1)}%`;
  const label = n === 0 ? "all captions" : `${n} figure${n > 1 ? "s" : ""}`;
  console.log(
    `${label} (${rows.length}): one candidate ${
      single.map((e) => rate((i) => e[i])).join(" / ")
    }; ` +
      `CLIP's choice of three ${reranked.map((e) => rate((i) => e[i])).join(" / ")}; ` +
      `best of three ${rate((i) => single.some((e) => e[i]))}`,
  );
}
