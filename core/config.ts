/**
 * Configs: JSONC files validated by a zod schema assembled from the plugin registry, with
 * one-line errors that point at the offending path and suggest the nearest valid name. One
 * file per job under core/config/: the schema (schema.ts), validation (validate.ts), the sizes
 * components share, stated once (sizes.ts), error rendering (errors.ts), the JSONC parser
 * (jsonc.ts) and third-party plugin modules (plugins.ts). Reading a config file from disk is
 * core/config_file.ts.
 *
 * @module
 */
export * from "./config/errors.ts";
export * from "./config/schema.ts";
export * from "./config/jsonc.ts";
export * from "./config/sizes.ts";
export * from "./config/validate.ts";
export * from "./config/plugins.ts";
