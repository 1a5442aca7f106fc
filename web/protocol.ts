/**
 * Messages between the page (web/main.ts) and the model worker (web/worker.ts). Plain objects
 * (structured clone); images travel as transferable typed arrays.
 *
 * @module
 */

/** Sampling settings the page sends. */
export interface SampleSettings {
  n: number;
  guidance: number;
  steps: number;
  sampler: string;
  seed: number;
  /** Decoder candidates per text-to-image image, the one CLIP matches best kept (not variations). */
  rerank: number;
}

/** Page -> worker. */
export type Request =
  | { type: "load"; weights: string }
  | { type: "generate"; id: number; caption: string } & SampleSettings
  | { type: "variations"; id: number; png: Uint8Array } & SampleSettings;

/** Why something failed, so the page can word it: each kind has its own advice. */
export type ErrorKind =
  | "no-webgpu"
  | "no-adapter"
  | "adapter-limit"
  | "weights"
  | "input"
  | "internal";

/** Worker -> page. */
export type Reply =
  | {
    type: "ready";
    adapter: string;
    imageSize: number;
    contextLength: number;
    samplers: string[];
    defaultSampler: string;
    /** The default sampler's steps as the weights' config sets them (undefined: every step). */
    defaultSteps: number | undefined;
    /** The decoder's guidance scale as the weights' config sets it (`sampling.guidance`). */
    defaultGuidance: number;
    /** Candidates per text-to-image image as the weights' config sets it (`sampling.rerank`). */
    defaultRerank: number;
    decoderSteps: number;
  }
  | { type: "status"; text: string }
  /** `queued`: the step was recorded; `done`: the GPU finished it (what the bar shows). */
  | { type: "progress"; id: number; phase: "queued" | "done"; step: number; total: number }
  | {
    type: "images";
    id: number;
    /** One RGB (8-bit) image after another, each `width` x `height`. */
    rgb: Uint8Array;
    /** The same images as NCHW float32 in [-1, 1] (what tests compare with Deno's output). */
    images: Float32Array;
    shape: [number, number, number, number];
    unseenWords: string[];
    ms: number;
  }
  | { type: "error"; id?: number; kind: ErrorKind; message: string };
