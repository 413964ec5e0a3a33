/**
 * Running a CLI as a user does, for the apps' tests: a `deno run -A SCRIPT ...args` subprocess of the
 * current Deno binary (not `npx`, so no npm noise reaches stderr), colour off.
 * @module
 */

/** Exit code and decoded output of one CLI run. */
export interface CliResult {
  /** Process exit code. */
  code: number;
  /** Everything written to stdout. */
  stdout: string;
  /** Everything written to stderr. */
  stderr: string;
}

/** Run `script` with `args` in a Deno subprocess and collect its output. */
export async function runCli(script: string, ...args: string[]): Promise<CliResult> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}
