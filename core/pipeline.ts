/**
 * Builds components from a resolved config through the plugin registry, loads a trained run
 * (`<run>/clip`, `<run>/prior`, `<run>/decoder`, optionally `<run>/upsampler` and
 * `<run>/reranker`), and runs the full unCLIP text-to-image pipeline (thesis Figure 3.1): caption
 * -> tokenizer -> CLIP text encoder -> prior -> decoder with classifier-free guidance -> images.
 * One file per job under pipeline/: building components (build.ts), loading a run (load.ts), the
 * CLIP conditioning and the embedding cache the prior trains on (clip_cache.ts), generating
 * images (generate.ts), DALL-E 2's upsampler cascade (upsample.ts) and a second CLIP that only
 * reranks the candidates (reranker.ts). This module re-exports them.
 *
 * @module
 */
export {
  CLIP_SLOTS,
  createClip,
  createComponent,
  createDataset,
  createDecoder,
  createPrior,
  createSampler,
  createTokenizer,
  createUpsampler,
  type DecoderDropRates,
  decoderDropRates,
  decoderNullRate,
  loadCheckedSplit,
  type PriorModel,
  STAGE_SLOTS,
} from "./pipeline/build.ts";
export {
  type Components,
  createPriorSampler,
  type LateDecoderOption,
  loadClip,
  loadPipeline,
  type LoadPipelineOptions,
  loadResolvedCheckpoint,
  revalidateStoredConfig,
} from "./pipeline/load.ts";
export {
  buildClipCache,
  type ClipCache,
  clipConditioning,
  gatherClipCache,
} from "./pipeline/clip_cache.ts";
export {
  bestOfCandidates,
  decodeImages,
  decoderGuidance,
  decoderRerank,
  type GeneratedImages,
  type GenerateImagesOptions,
  imageVariations,
  inputImageSize,
  MAX_IMAGES,
  NonFiniteOutputError,
  outputImageSize,
  reconstructImages,
  sampleEmbeddings,
  switchedPredictor,
  textToImage,
  unseenWords,
  upsampleRealImages,
} from "./pipeline/generate.ts";
export {
  type LoadedUpsampler,
  loadUpsampler,
  upsampleImages,
  type UpsampleOptions,
} from "./pipeline/upsample.ts";
export {
  imageTextScores,
  type LoadedReranker,
  loadReranker,
  rerankerScores,
} from "./pipeline/reranker.ts";
