/**
 * A ground-truth probe: a small CNN trained on the shapes data's own labels as a multi-label
 * classifier over the 17 x 6 (colour, shape) pairs, a figure-count logit and the size word of
 * each pair (17 x 6 x 3 logits). It scores any image (generated or real) against its caption with
 * `score.ts`. Trained with Adam for a fixed number of steps and cached in `<run>/probe/` so later
 * evals reuse it. One file per job, re-exported here:
 *
 * - `probe_model.ts`: the network, its options and defaults, the 8 dihedral views;
 * - `probe_train.ts`: the targets, the loss and the training loop;
 * - `probe_predict.ts`: logits, predictions and scores of images;
 * - `probe_cache.ts`: saving, loading and `loadOrTrainProbe`.
 *
 * @module
 */
export {
  DEFAULT_PROBE_OPTIONS,
  DEFAULT_PROBE_STEPS,
  dihedralInto,
  MIN_PROBE_IMAGES,
  PROBE_LOGITS,
  type ProbeOptions,
  ShapeProbe,
} from "./probe_model.ts";
export { addGrain, bceWithLogits, trainProbe } from "./probe_train.ts";
export { predictProbe, probeLogits, scoreImages } from "./probe_predict.ts";
export {
  loadOrTrainProbe,
  loadProbe,
  PROBE_FORMAT_VERSION,
  type ProbeInfo,
  sameProbeOptions,
  saveProbe,
} from "./probe_cache.ts";
