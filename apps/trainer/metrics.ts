/**
 * Training metrics on disk: `OUT/metrics.jsonl` (one JSON object per logged step, plus evaluation
 * rows) and `OUT/metrics.svg`, a dependency-free plot regenerated at every log — loss curves (total
 * and per unrolled step), accuracy curves per step, and τ of the evaluations. Both files are written
 * to a temporary name and renamed, so a reader never sees a torn file. On resume the JSONL is cut
 * back to the checkpoint's step (rows a killed run logged after its last checkpoint are dropped), so
 * the file reads as one uninterrupted run.
 * @module
 */

/** One logged training step. */
export interface StepRow {
  /** 1-based optimizer step. */
  step: number;
  /** Σ_k 0.8^k · loss_k. */
  loss: number;
  /** Per unrolled step soft cross-entropy. */
  loss_k: number[];
  /** Per unrolled step top-1 accuracy (vs the target's argmax). */
  acc_k: number[];
  /** acc_k / acc_{k−1} (acc_0 for k = 0): accuracy of step k given step k−1 was right (approx.). */
  cond_acc_k: (number | null)[];
  /** Learning rate of this step. */
  lr: number;
  /** Global gradient norm before clipping. */
  grad_norm: number;
  /** Tokens (B·S, padding included) per second over the steps since the previous log. */
  tokens_per_s: number;
  /** Seconds of training so far (over all resumed runs). */
  elapsed_s: number;
  /** GTO Phase II metrics of the logged step (`--phase gto` only). */
  gto?: {
    /** Prefixes (trees) trained on. */
    prefixes: number;
    /** Mean tree reward of M and of M₀. */
    reward_m: number;
    reward_m0: number;
    /** Mean R, mean |A|, fraction of groups with std < δ. */
    mean_r: number;
    mean_abs_a: number;
    flat_groups: number;
    /** Fraction of prefixes whose PPO clip is active; ratio range over prefixes with l > 0. */
    clip_fraction: number;
    ratio_min: number;
    ratio_max: number;
    /** The token loss and L_GTO. */
    loss_token: number;
    loss_gto: number;
    /** Mean data-path accepted length l; tree-simulated τ = mean(l_greedy + 1); Ŝ agreement. */
    mean_l: number;
    simulated_tau: number;
    agreement: number;
  };
}

/** One evaluation. */
export interface EvalRow {
  /** Step after which the draft was evaluated. */
  step: number;
  /** τ (new tokens per verification cycle, bonus included) over all prompts, and details. */
  eval: { tau: number; prompts: number; tokens: number; cycles: number; seconds: number };
}

/** A metrics.jsonl row. */
export type MetricsRow = StepRow | EvalRow;

/** Conditional accuracies acc_k / acc_{k−1} (null where acc_{k−1} is 0). */
export function conditionalAccuracies(acc: readonly number[]): (number | null)[] {
  return acc.map((a, k) => k === 0 ? a : acc[k - 1] > 0 ? a / acc[k - 1] : null);
}

async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  try {
    await Deno.writeTextFile(tmp, text);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

/** The rows of a metrics.jsonl (missing file: none; unparsable lines are skipped). */
export async function readMetricsFile(path: string): Promise<MetricsRow[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  const rows: MetricsRow[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    try {
      rows.push(JSON.parse(line));
    } catch {
      // A torn last line of a killed run: drop it.
    }
  }
  return rows;
}

/** Appends rows to metrics.jsonl and redraws metrics.svg. */
export class MetricsLog {
  /** Path of the JSONL file. */
  readonly jsonlPath: string;
  /** Path of the SVG plot. */
  readonly svgPath: string;
  readonly #rows: MetricsRow[];

  private constructor(jsonlPath: string, svgPath: string, rows: MetricsRow[]) {
    this.jsonlPath = jsonlPath;
    this.svgPath = svgPath;
    this.#rows = rows;
  }

  /**
   * Open the log in `outDir`. With `keepUpTo` (a resume) the existing rows with step ≤ keepUpTo are
   * kept and the file is rewritten with them; otherwise the log starts empty.
   */
  static async open(outDir: string, keepUpTo: number | null): Promise<MetricsLog> {
    const jsonl = `${outDir}/metrics.jsonl`, svg = `${outDir}/metrics.svg`;
    const rows = keepUpTo === null ? [] : (await readMetricsFile(jsonl)).filter((r) => r.step <= keepUpTo);
    const log = new MetricsLog(jsonl, svg, rows);
    await writeAtomic(jsonl, rows.map((r) => JSON.stringify(r) + "\n").join(""));
    return log;
  }

  /** All rows so far. */
  get rows(): readonly MetricsRow[] {
    return this.#rows;
  }

  /** Append a row to the JSONL file and redraw the plot. */
  async append(row: MetricsRow): Promise<void> {
    this.#rows.push(row);
    await Deno.writeTextFile(this.jsonlPath, JSON.stringify(row) + "\n", { append: true });
    await writeAtomic(this.svgPath, renderSvg(this.#rows));
  }
}

// ---- SVG ------------------------------------------------------------------------------------------

const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];

interface Series {
  name: string;
  color: string;
  points: [number, number][];
  dashed?: boolean;
  markers?: boolean;
}

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function fmtTick(v: number): string {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1000 || a < 0.01) return v.toExponential(1);
  return Number(v.toPrecision(3)).toString();
}

/** "Nice" tick values covering [lo, hi]. */
function ticks(lo: number, hi: number, n = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    out.push(Number(v.toPrecision(12)));
  }
  return out;
}

/** One panel (x = step) at (x0, y0) of size w × h. */
function panel(
  title: string,
  series: Series[],
  x0: number,
  y0: number,
  w: number,
  h: number,
  xMax: number,
  yRange?: [number, number],
): string {
  const pts = series.flatMap((s) => s.points).filter(([, y]) => Number.isFinite(y));
  const parts: string[] = [];
  const L = 56, R = 120, T = 24, Bm = 30; // margins (legend on the right)
  const pw = w - L - R, ph = h - T - Bm;
  parts.push(
    `<text x="${x0 + L}" y="${y0 + 16}" font-size="13" font-weight="bold">${esc(title)}</text>`,
    `<rect x="${x0 + L}" y="${y0 + T}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`,
  );
  if (pts.length === 0) {
    parts.push(`<text x="${x0 + L + 10}" y="${y0 + T + 20}" font-size="12" fill="#777">no data yet</text>`);
    return parts.join("\n");
  }
  let [ylo, yhi] = yRange ?? [Math.min(...pts.map((p) => p[1])), Math.max(...pts.map((p) => p[1]))];
  if (!(yhi > ylo)) [ylo, yhi] = [ylo - 0.5, yhi + 0.5];
  const pad = yRange ? 0 : (yhi - ylo) * 0.05;
  ylo -= pad;
  yhi += pad;
  const xhi = Math.max(xMax, 1);
  const sx = (x: number) => x0 + L + (x / xhi) * pw;
  const sy = (y: number) => y0 + T + ph - ((y - ylo) / (yhi - ylo)) * ph;
  for (const t of ticks(ylo, yhi)) {
    parts.push(
      `<line x1="${x0 + L}" x2="${x0 + L + pw}" y1="${sy(t).toFixed(1)}" y2="${
        sy(t).toFixed(1)
      }" stroke="#eee"/>`,
      `<text x="${x0 + L - 4}" y="${(sy(t) + 4).toFixed(1)}" font-size="10" text-anchor="end">${
        fmtTick(t)
      }</text>`,
    );
  }
  for (const t of ticks(0, xhi)) {
    parts.push(
      `<text x="${sx(t).toFixed(1)}" y="${y0 + T + ph + 14}" font-size="10" text-anchor="middle">${
        fmtTick(t)
      }</text>`,
    );
  }
  parts.push(
    `<text x="${x0 + L + pw / 2}" y="${y0 + h - 2}" font-size="10" text-anchor="middle">step</text>`,
  );
  series.forEach((s, i) => {
    const p = s.points.filter(([, y]) => Number.isFinite(y));
    if (p.length > 0) {
      const d = p.map(([x, y], j) => `${j ? "L" : "M"}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join("");
      parts.push(
        `<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.5"${
          s.dashed ? ' stroke-dasharray="4 3"' : ""
        }/>`,
      );
      if (s.markers || p.length === 1) {
        for (const [x, y] of p) {
          parts.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="2.5" fill="${s.color}"/>`);
        }
      }
    }
    const ly = y0 + T + 12 + i * 14;
    parts.push(
      `<line x1="${x0 + L + pw + 10}" x2="${x0 + L + pw + 28}" y1="${ly - 4}" y2="${
        ly - 4
      }" stroke="${s.color}" stroke-width="2"/>`,
      `<text x="${x0 + L + pw + 32}" y="${ly}" font-size="11">${esc(s.name)}</text>`,
    );
  });
  return parts.join("\n");
}

/** The metrics plot: total + per-step loss, per-step accuracy, τ of the evaluations. */
export function renderSvg(rows: readonly MetricsRow[]): string {
  const steps = rows.filter((r): r is StepRow => "loss" in r);
  const evals = rows.filter((r): r is EvalRow => "eval" in r);
  const xMax = Math.max(1, ...rows.map((r) => r.step));
  const nk = Math.max(0, ...steps.map((r) => r.loss_k.length));
  // The logged losses are of single batches (noisy with small batches): also an EMA (α = 0.2).
  let ema = NaN;
  const emaPoints = steps.map((r): [number, number] => {
    ema = Number.isNaN(ema) ? r.loss : 0.8 * ema + 0.2 * r.loss;
    return [r.step, ema];
  });
  const lossSeries: Series[] = [
    { name: "loss (Σ0.8^k)", color: "#bbb", points: steps.map((r) => [r.step, r.loss]) },
    { name: "loss EMA", color: "#000", points: emaPoints },
    ...Array.from({ length: nk }, (_, k) => ({
      name: `loss step ${k}`,
      color: COLORS[k % COLORS.length],
      dashed: true,
      points: steps.map((r) => [r.step, r.loss_k[k]] as [number, number]),
    })),
  ];
  const accSeries: Series[] = Array.from({ length: nk }, (_, k) => ({
    name: `acc step ${k}`,
    color: COLORS[k % COLORS.length],
    points: steps.map((r) => [r.step, r.acc_k[k]] as [number, number]),
  }));
  const tauSeries: Series[] = [{
    name: "τ (T=0)",
    color: "#d62728",
    markers: true,
    points: evals.map((r) => [r.step, r.eval.tau]),
  }];
  const W = 760, H = 260;
  const last = steps.at(-1), lastEval = evals.at(-1);
  const caption = [
    last ? `step ${last.step}: loss ${last.loss.toFixed(4)}, acc0 ${last.acc_k[0]?.toFixed(3)}` : "",
    lastEval ? `τ ${lastEval.eval.tau.toFixed(3)} @ step ${lastEval.step}` : "",
  ].filter((s) => s).join(" · ");
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${3 * H + 30}" viewBox="0 0 ${W} ${
    3 * H + 30
  }" font-family="sans-serif">
<rect width="100%" height="100%" fill="#fff"/>
<text x="10" y="18" font-size="12" fill="#444">${esc(caption || "EAGLE-3 Phase I training")}</text>
${panel("Training loss (soft cross-entropy per unrolled step)", lossSeries, 0, 24, W, H, xMax)}
${panel("Training accuracy (top-1 vs target argmax)", accSeries, 0, 24 + H, W, H, xMax, [0, 1])}
${panel("Acceptance length τ on held-out prompts", tauSeries, 0, 24 + 2 * H, W, H, xMax)}
</svg>
`;
}
