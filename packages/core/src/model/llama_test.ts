/**
 * The GPU LLaMA forward against PyTorch's float32 outputs for the bundled tiny model
 * (models/tiny/reference.json, provenance in models/tiny/PROVENANCE.md). `small` and stories260K are
 * checked by `deno task test:shared` (tests_shared/), which needs ../shared.
 */
import { loadModelDir } from "../io/model_dir.ts";
import { checkModelAgainstReference } from "../testing/reference_check.ts";

const TINY = decodeURIComponent(new URL("../../../../models/tiny", import.meta.url).pathname);

Deno.test("tiny on the GPU matches PyTorch: top-10 logits, per-position logits, hidden taps, greedy_48", async () => {
  const dir = await loadModelDir(TINY);
  const s = await checkModelAgainstReference(dir, `${TINY}/reference.json`);
  console.log(
    `tiny: ${s.cases} cases; worst logit err ${s.worstLogitRel.toExponential(2)}·max|row|, hidden ${
      s.worstHiddenRel.toExponential(2)
    }·max|h|`,
  );
});
