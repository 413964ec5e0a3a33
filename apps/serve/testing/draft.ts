/**
 * A freshly initialised (random) EAGLE-3 draft for the bundled tiny target, saved to a temp directory, for
 * tests that need a draft on disk without depending on a trained one (speculative decoding is lossless,
 * so T = 0 text does not depend on which draft is used).
 * @module
 */
import { Eagle3Draft, KernelCache, loadModelDir, Recorder } from "@gto/core";
import { testGpu } from "../../../packages/core/src/testing/mod.ts";

const TINY = decodeURIComponent(new URL("../../../models/tiny", import.meta.url).pathname);

/** Save a random draft (seed 3, draft vocabulary 256) to a new temp dir named `prefix…`; returns the dir. */
export async function saveRandomDraft(prefix: string): Promise<string> {
  const { gpu } = await testGpu();
  const dir = await Deno.makeTempDir({ prefix });
  const d = Eagle3Draft.create(gpu, await loadModelDir(TINY), {
    seed: 3,
    draftVocabSize: 256,
    maxSeqLen: 64,
  });
  const rec = new Recorder(gpu, new KernelCache(gpu));
  try {
    await d.save(rec, dir);
  } finally {
    d.destroy();
    rec.destroy();
  }
  return dir;
}
