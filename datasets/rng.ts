/**
 * The seeded host random generator (moved to core/data/rng.ts; re-exported here for the
 * generators and for code that imported it from datasets/).
 * @module
 */
export * from "../core/data/rng.ts";
