/**
 * `@gto/core/testing`: test utilities — one shared GPU device per test process (`testGpu`), seeded
 * random data, all-close checks, a model-vs-PyTorch reference check, and `runCli` for CLI tests.
 * @module
 */
export * from "./src/testing/mod.ts";
export * from "./src/testing/cli.ts";
export * from "./src/testing/reference_check.ts";
