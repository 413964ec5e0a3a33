/**
 * `@gto/core/cli`: the shared command-line plumbing of the project's apps — one flag table drives
 * argv, config files, `--help` and validation ({@link parseFlags}, {@link helpText}), with
 * one-line `error:` messages ({@link FlagError}, {@link fail}).
 * @module
 */
export * from "./flags.ts";
