/**
 * Prometheus text exposition (format 0.0.4) for `GET /metrics`, written by hand: counters, gauges read
 * at scrape time and cumulative histograms. Names follow vLLM's, under the `gto:` prefix, so existing
 * dashboards carry over: the four speculative-decoding counters (`spec_decode_num_drafts_total`,
 * `…num_draft_tokens_total`, `…num_accepted_tokens_total`, `…num_accepted_tokens_per_pos_total{position}`
 * with vLLM's cumulative meaning: per_pos[i] counts cycles that accepted at least i+1 drafts), TTFT /
 * e2e / queue-time histograms with vLLM's buckets, and a **per-token** inter-token latency (SGLang's
 * method: a request's decode time divided by its tokens, observed once per token) because with
 * speculative decoding vLLM's per-step "ITL" is really the cycle time, which gets its own histogram.
 * @module
 */

type Labels = Record<string, string>;

function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function fmtLabels(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  return parts.length ? `{${parts.join(",")}}` : "";
}

function fmtNum(x: number): string {
  if (x === Infinity) return "+Inf";
  if (x === -Infinity) return "-Inf";
  return Number.isNaN(x) ? "NaN" : String(x);
}

interface Metric {
  render(base: Labels): string[];
}

/** A monotonically increasing count, optionally split by one label. */
export class Counter implements Metric {
  readonly #values = new Map<string, { labels: Labels; value: number }>();
  constructor(readonly name: string, readonly help: string) {}

  /** Add `v` (≥ 0) to the series with `labels`. */
  inc(labels: Labels = {}, v = 1): void {
    const key = JSON.stringify(labels);
    const s = this.#values.get(key) ?? { labels, value: 0 };
    s.value += v;
    this.#values.set(key, s);
  }

  /** Current value of one series (0 if never incremented). */
  get(labels: Labels = {}): number {
    return this.#values.get(JSON.stringify(labels))?.value ?? 0;
  }

  render(base: Labels): string[] {
    const out = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    if (this.#values.size === 0) out.push(`${this.name}${fmtLabels(base)} 0`);
    for (const { labels, value } of this.#values.values()) {
      out.push(`${this.name}${fmtLabels({ ...base, ...labels })} ${fmtNum(value)}`);
    }
    return out;
  }
}

/** A value read when scraped. */
export class Gauge implements Metric {
  constructor(readonly name: string, readonly help: string, readonly read: () => number) {}

  render(base: Labels): string[] {
    return [
      `# HELP ${this.name} ${this.help}`,
      `# TYPE ${this.name} gauge`,
      `${this.name}${fmtLabels(base)} ${fmtNum(this.read())}`,
    ];
  }
}

/** A cumulative histogram with fixed upper bounds. */
export class Histogram implements Metric {
  readonly #counts: number[];
  #sum = 0;
  #count = 0;
  constructor(readonly name: string, readonly help: string, readonly buckets: readonly number[]) {
    this.#counts = new Array(buckets.length).fill(0);
  }

  /** Record `value` `n` times (n > 1: SGLang's per-token ITL). */
  observe(value: number, n = 1): void {
    if (!Number.isFinite(value) || n <= 0) return;
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]) this.#counts[i] += n;
    this.#sum += value * n;
    this.#count += n;
  }

  /** Observations so far. */
  get count(): number {
    return this.#count;
  }

  render(base: Labels): string[] {
    const out = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    this.buckets.forEach((b, i) => {
      out.push(`${this.name}_bucket${fmtLabels({ ...base, le: fmtNum(b) })} ${this.#counts[i]}`);
    });
    out.push(`${this.name}_bucket${fmtLabels({ ...base, le: "+Inf" })} ${this.#count}`);
    out.push(`${this.name}_sum${fmtLabels(base)} ${fmtNum(this.#sum)}`);
    out.push(`${this.name}_count${fmtLabels(base)} ${this.#count}`);
    return out;
  }
}

const TTFT_BUCKETS = [
  0.001,
  0.005,
  0.01,
  0.02,
  0.04,
  0.06,
  0.08,
  0.1,
  0.25,
  0.5,
  0.75,
  1,
  2.5,
  5,
  7.5,
  10,
  20,
  40,
  80,
  160,
  640,
  2560,
];
const ITL_BUCKETS = [
  0.002,
  0.004,
  0.006,
  0.008,
  0.01,
  0.015,
  0.02,
  0.025,
  0.03,
  0.035,
  0.04,
  0.06,
  0.08,
  0.1,
  0.2,
  0.4,
  0.6,
  0.8,
  1,
  2,
  4,
  6,
  8,
];
const LATENCY_BUCKETS = [
  0.3,
  0.5,
  0.8,
  1,
  1.5,
  2,
  2.5,
  5,
  10,
  15,
  20,
  30,
  40,
  50,
  60,
  120,
  240,
  480,
  960,
  1920,
  7680,
];
const QUEUE_BUCKETS = [0, 0.01, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60, 120];
const CYCLE_BUCKETS = [0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2];

/** Why a request was turned away (label of `requests_rejected_total`). */
export type RejectReason =
  | "invalid"
  | "context"
  | "not_found"
  | "auth"
  | "too_large"
  | "queue_full"
  | "queue_timeout"
  | "loading";

/** What one finished generation reports to the metrics. */
export interface FinishedRequest {
  /** stop | length | abort | error. */
  finishReason: string;
  /** Prompt tokens. */
  promptTokens: number;
  /** New tokens. */
  completionTokens: number;
  /** Seconds from arrival to the first text (undefined if none came). */
  ttftSeconds?: number;
  /** Seconds from arrival to the end. */
  e2eSeconds: number;
  /** Seconds spent waiting for the engine slot. */
  queueSeconds: number;
  /** Engine decode seconds (first token to last), for the per-token ITL. */
  decodeSeconds: number;
  /** Speculative statistics, if any. */
  speculative?: { cycles: number; acceptanceLength: number; acceptedPerPosition: number[] };
  /** Verified tree nodes per cycle, root included (for draft-token counts). */
  treeTokens?: number;
}

/** All of the server's metrics. */
export class ServerMetrics {
  readonly prefix: string;
  readonly numDrafts: Counter;
  readonly numDraftTokens: Counter;
  readonly numAcceptedTokens: Counter;
  readonly acceptedPerPos: Counter;
  readonly promptTokens: Counter;
  readonly generationTokens: Counter;
  readonly requestSuccess: Counter;
  readonly rejected: Counter;
  readonly disconnects: Counter;
  readonly ttft: Histogram;
  readonly itl: Histogram;
  readonly e2e: Histogram;
  readonly queueTime: Histogram;
  readonly cycleTime: Histogram;
  readonly #all: Metric[];
  readonly #modelName: () => string;

  /** `modelName` is read at scrape time (the `model_name` label; the model may still be loading). */
  constructor(
    modelName: () => string,
    gauges: { running: () => number; waiting: () => number },
    prefix = "gto:",
  ) {
    this.prefix = prefix;
    this.#modelName = modelName;
    const p = prefix;
    this.numDrafts = new Counter(
      `${p}spec_decode_num_drafts_total`,
      "Speculative cycles (one draft tree verified each).",
    );
    this.numDraftTokens = new Counter(
      `${p}spec_decode_num_draft_tokens_total`,
      "Draft tokens verified (tree nodes minus the root, per cycle).",
    );
    this.numAcceptedTokens = new Counter(
      `${p}spec_decode_num_accepted_tokens_total`,
      "Draft tokens accepted.",
    );
    this.acceptedPerPos = new Counter(
      `${p}spec_decode_num_accepted_tokens_per_pos_total`,
      "Cycles that accepted a draft token at depth position+1 (cumulative, as vLLM).",
    );
    this.promptTokens = new Counter(`${p}prompt_tokens_total`, "Prompt tokens processed.");
    this.generationTokens = new Counter(`${p}generation_tokens_total`, "Tokens generated.");
    this.requestSuccess = new Counter(`${p}request_success_total`, "Finished generations by finish reason.");
    this.rejected = new Counter(
      `${p}requests_rejected_total`,
      "Requests rejected before generation, by reason.",
    );
    this.disconnects = new Counter(
      `${p}http_requests_client_disconnected_total`,
      "Clients that went away before their response was complete.",
    );
    this.ttft = new Histogram(
      `${p}time_to_first_token_seconds`,
      "Arrival to first output text.",
      TTFT_BUCKETS,
    );
    this.itl = new Histogram(
      `${p}inter_token_latency_seconds`,
      "Per-token decode latency (a request's decode time / its tokens, once per token).",
      ITL_BUCKETS,
    );
    this.e2e = new Histogram(`${p}e2e_request_latency_seconds`, "Arrival to last output.", LATENCY_BUCKETS);
    this.queueTime = new Histogram(
      `${p}request_queue_time_seconds`,
      "Time waiting for the engine.",
      QUEUE_BUCKETS,
    );
    this.cycleTime = new Histogram(
      `${p}spec_decode_cycle_seconds`,
      "Mean speculative cycle time per request (observed once per cycle).",
      CYCLE_BUCKETS,
    );
    this.#all = [
      this.numDrafts,
      this.numDraftTokens,
      this.numAcceptedTokens,
      this.acceptedPerPos,
      this.promptTokens,
      this.generationTokens,
      this.requestSuccess,
      this.rejected,
      this.disconnects,
      new Gauge(`${p}num_requests_running`, "Requests generating now.", gauges.running),
      new Gauge(`${p}num_requests_waiting`, "Requests waiting in the queue.", gauges.waiting),
      this.ttft,
      this.itl,
      this.e2e,
      this.queueTime,
      this.cycleTime,
    ];
  }

  /** Count one finished generation. */
  finished(r: FinishedRequest): void {
    this.requestSuccess.inc({ finished_reason: r.finishReason });
    this.promptTokens.inc({}, r.promptTokens);
    this.generationTokens.inc({}, r.completionTokens);
    if (r.ttftSeconds !== undefined) this.ttft.observe(r.ttftSeconds);
    this.e2e.observe(r.e2eSeconds);
    this.queueTime.observe(r.queueSeconds);
    if (r.completionTokens > 1) {
      this.itl.observe(r.decodeSeconds / (r.completionTokens - 1), r.completionTokens - 1);
    }
    const s = r.speculative;
    if (s && s.cycles > 0) {
      this.numDrafts.inc({}, s.cycles);
      if (r.treeTokens) this.numDraftTokens.inc({}, s.cycles * (r.treeTokens - 1));
      // acceptanceLength counts the bonus token: accepted drafts per cycle = L − 1.
      this.numAcceptedTokens.inc({}, Math.round(s.cycles * (s.acceptanceLength - 1)));
      s.acceptedPerPosition.forEach((rate, i) => {
        this.acceptedPerPos.inc({ position: String(i) }, Math.round(rate * s.cycles));
      });
      this.cycleTime.observe(r.decodeSeconds / s.cycles, s.cycles);
    }
  }

  /** The exposition text. */
  render(): string {
    const base = { model_name: this.#modelName() };
    return this.#all.flatMap((m) => m.render(base)).join("\n") + "\n";
  }
}
