/**
 * `@gto/core/cli`: the shared command-line plumbing of the project's apps — one flag table drives
 * argv, config files, `--help` and validation (`parseFlags`, `helpText`), with one-line `error:`
 * messages (`FlagError`, `fail`).
 * @module
 */
export * from "./src/cli/flags.ts";
