/**
 * `deno task train`: Phase I of EAGLE-3 draft training on the GPU (see train.ts for the pipeline,
 * config.ts for the flags). Progress goes to stderr; bad input ends with exit 1 and one `error:`
 * line naming the flag, file or key at fault (no stack trace). Ctrl-C finishes the current step,
 * writes a checkpoint and exits 130; a second Ctrl-C exits at once.
 * @module
 */
import { GpuUnavailableError, ModelLoadError, ShapeError } from "@gto/core";
import { DataFileError } from "@gto/core/train";
import { fail } from "@gto/core/cli";
import { ConfigError, HELP, parseSettings, resolveConfig } from "./config.ts";
import { resolveRun, runTraining } from "./train.ts";
import { formatDuration, stderrSink } from "./progress.ts";

async function main(): Promise<number> {
  const parsed = await parseSettings(Deno.args);
  if (parsed.help) {
    console.log(HELP);
    return 0;
  }
  const { cfg, resume } = await resolveRun(parsed.given, resolveConfig(parsed.given));
  let stopRequested = false, training = false;
  const onSigint = () => {
    if (stopRequested || !training) {
      // Before training (data regeneration: the cache is appended per sample) or a second Ctrl-C.
      console.error("\ninterrupted");
      Deno.exit(130);
    }
    stopRequested = true;
    console.error("\nCtrl-C: finishing the current step and writing a checkpoint (Ctrl-C again to quit now)");
  };
  Deno.addSignalListener("SIGINT", onSigint);
  try {
    const sink = stderrSink();
    const r = await runTraining(cfg, resume, {
      sink,
      shouldStop: () => stopRequested,
      onTrainingStart: () => training = true,
    });
    const last = r.last;
    const tau = r.evals.at(-1)?.eval.tau;
    console.error(
      `${r.finished ? "done" : r.interrupted ? "interrupted" : "stopped"} at step ${r.step}/${cfg.steps}: ` +
        (last ? `loss ${last.loss.toFixed(4)}, acc0 ${last.acc_k[0].toFixed(3)}, ` : "") +
        `${r.tokensPerSecond.toFixed(1)} tok/s` +
        (tau !== undefined ? `, tau ${tau.toFixed(3)} (T=0, ${r.evals.at(-1)!.eval.prompts} prompts)` : "") +
        (last ? `, elapsed ${formatDuration(last.elapsed_s)}` : "") +
        (r.checkpoint ? `; checkpoint ${r.checkpoint}` : ""),
    );
    return r.interrupted ? 130 : 0;
  } finally {
    Deno.removeSignalListener("SIGINT", onSigint);
  }
}

try {
  Deno.exit(await main());
} catch (e) {
  if (
    e instanceof ConfigError || e instanceof DataFileError || e instanceof ModelLoadError ||
    e instanceof GpuUnavailableError || e instanceof ShapeError
  ) {
    fail(e.message);
  }
  throw e;
}
