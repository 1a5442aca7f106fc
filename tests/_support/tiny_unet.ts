/**
 * Test support: the options of a tiny text-conditioned U-Net decoder (8 x 8 images, two levels,
 * one small text transformer), for tests that need a real decoder but not a large one.
 */
import { type UNetOptions, unetOptions } from "../../plugins/decoders/mod.ts";

/** The tiny U-Net's options, with `overrides` replacing any field (before validation). */
export function tinyUNetOptions(overrides: Record<string, unknown> = {}): UNetOptions {
  return unetOptions.parse({
    imageSize: 8,
    baseChannels: 8,
    channelMults: [1, 2],
    resBlocksPerLevel: 1,
    timeEmbedDim: 8,
    heads: 2,
    attentionLevels: [1],
    textWidth: 16,
    textLayers: 1,
    textHeads: 2,
    contextLength: 5,
    vocabSize: 30,
    clipEmbedDim: 8,
    clipTokens: 2,
    ...overrides,
  });
}
