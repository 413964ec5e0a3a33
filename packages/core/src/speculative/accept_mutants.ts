/**
 * Mutation check of the horizon test (`horizonCheck`, lossless_check.ts): does it catch plausible bugs
 * in T>0 acceptance? Each mutant is a text patch of accept_ref.ts, written to a temporary copy beside
 * it, imported, and scored with the same configurations and n as accept_sample_test.ts. A patch that
 * no longer applies fails loudly (re-target it after editing the reference).
 *
 * Run: `deno run -A packages/core/src/speculative/accept_mutants.ts` (≈ 1–2 min on the CPU).
 *
 * Result (CPU, n = 1e5 per configuration, α = 1e-3; config 0 = V 5, widths [3, 2], H 4, 109 cells;
 * config 1 = V 6, widths [4, 1, 1], H 4, 261 cells), recorded 2026-11-30:
 *
 * | mutant                                  | config 0: χ² (critical) | out of support | config 1: χ² (critical) | out of support | caught |
 * |-----------------------------------------|-------------------------|----------------|-------------------------|----------------|--------|
 * | none (the reference)                    | 92 (159.2)              | 0 cells        | 264 (316.9)             | 0 cells        | —      |
 * | r not reset after acceptance            | 55908 (159.2)           | 0 cells        | 73265 (316.9)           | 0 cells        | yes    |
 * | leaf bonus from the parent row          | 111252 (159.2)          | 44 cells       | 137298 (316.9)          | 2 cells        | yes    |
 * | siblings share one u                    | 143545 (159.2)          | 0 cells        | 301410 (316.9)          | 0 cells        | yes    |
 * | u indexed by depth                      | 215920 (159.2)          | 0 cells        | 479664 (316.9)          | 0 cells        | yes    |
 * | bonus reuses the last u                 | 28702 (159.2)           | 0 cells        | 43016 (316.9)           | 0 cells        | yes    |
 * | no renormalisation: accept iff u < p(x) | 86015 (159.2)           | 0 cells        | 171409 (316.9)          | 0 cells        | yes    |
 * | residual keeps the rejected tokens      | 18603 (159.2)           | 0 cells        | 54907 (316.9)           | 0 cells        | yes    |
 * @module
 */
import { type AcceptRule, HORIZON_CONFIGS, horizonCheck } from "./lossless_check.ts";

const MUTANTS: { name: string; patches: [string, string][] }[] = [
  { name: "none (the reference)", patches: [] },
  {
    name: "r not reset after acceptance",
    patches: [["        r = 0;\n        fallback = -1;", "        fallback = -1;"]],
  },
  {
    name: "leaf bonus from the parent row",
    patches: [[
      "  let bonus = chunkedDrawRef(row, u(d));",
      "  if (nodes.length > 1 && !Array.from(parents).includes(cur)) {\n" +
      "    row = probs.slice(parents[cur] * V, (parents[cur] + 1) * V);\n  }\n" +
      "  let bonus = chunkedDrawRef(row, u(d));",
    ]],
  },
  {
    name: "siblings share one u",
    patches: [
      ["if (f(u(d++) * f(1 - r)) < px) {", "if (f(u(d) * f(1 - r)) < px) {\n        d++;"],
      [
        "    if (!accepted || !hasChild || nodes.length >= dp) break;",
        "    if (!accepted) d++;\n    if (!accepted || !hasChild || nodes.length >= dp) break;",
      ],
    ],
  },
  {
    name: "u indexed by depth",
    patches: [
      ["u(d++)", "u(nodes.length - 1)"],
      ["chunkedDrawRef(row, u(d))", "chunkedDrawRef(row, u(nodes.length - 1))"],
    ],
  },
  {
    name: "bonus reuses the last u",
    patches: [["chunkedDrawRef(row, u(d))", "chunkedDrawRef(row, u(Math.max(d - 1, 0)))"]],
  },
  {
    name: "no renormalisation: accept iff u < p(x)",
    patches: [["if (f(u(d++) * f(1 - r)) < px) {", "if (u(d++) < px) {"]],
  },
  {
    name: "residual keeps the rejected tokens",
    patches: [["        row[x] = 0;\n", ""]],
  },
];

if (import.meta.main) {
  const here = new URL(".", import.meta.url).pathname;
  const source = await Deno.readTextFile(`${here}accept_ref.ts`);
  console.log(
    "| mutant | " + HORIZON_CONFIGS.map((_, i) => `config ${i}: χ² (critical) | out of support`).join(" | ") +
      " | caught |",
  );
  console.log("|---|" + HORIZON_CONFIGS.map(() => "---|---|").join("") + "---|");
  for (const m of MUTANTS) {
    let text = source;
    for (const [from, to] of m.patches) {
      if (!text.includes(from)) {
        throw new Error(`mutant "${m.name}": patch target not found: ${JSON.stringify(from)}`);
      }
      text = text.replaceAll(from, to);
    }
    const file = await Deno.makeTempFile({ dir: here, prefix: ".mutant_", suffix: ".ts" });
    try {
      await Deno.writeTextFile(file, text);
      const mod = await import(`file://${file}`) as { acceptSampleRef: AcceptRule };
      const cells: string[] = [];
      let caught = false;
      for (const c of HORIZON_CONFIGS) {
        const r = horizonCheck(mod.acceptSampleRef, c);
        caught ||= !r.pass;
        cells.push(`${r.chi2.toFixed(0)} (${r.critical.toFixed(1)})`, `${r.outOfSupport.size} cells`);
      }
      console.log(
        `| ${m.name} | ${cells.join(" | ")} | ${
          m.patches.length === 0 ? (caught ? "FALSE ALARM" : "—") : caught ? "yes" : "NO"
        } |`,
      );
    } finally {
      await Deno.remove(file);
    }
  }
}
