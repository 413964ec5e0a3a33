/**
 * `deno task bench:serve`: load test of `deno task serve` over loopback HTTP. Starts a server (or uses
 * `--url` on 127.0.0.1 / localhost), warms it up with one request, then sends `--requests` streaming
 * chat completions from `--concurrency` clients at T=0 (prompts round-robin from a fixed list) while a
 * probe polls `/health` every 50 ms. Reports latency p50/p99 (request to last byte), TTFT p50/p99
 * (request to first content delta), aggregate output tokens/s (usage from `include_usage`), errors by
 * kind — queue-full 503s (`server_overloaded`) are intended back-pressure and counted apart from
 * everything else — the `/health` latency while busy, and the server's RSS before and after.
 *
 * Loopback only: the benchmark refuses other hosts (it is a load generator). Exit code 1 when any
 * unintended error happened.
 * @module
 */
import { parseArgs } from "node:util";
import { rssOf, type ServerProcess, startServer } from "../apps/serve/testing/server.ts";

const HELP = `Usage: deno task bench:serve [options] [-- server flags]

Load benchmark of deno task serve on loopback: N streaming chat requests at concurrency C.

Options:
  --requests N       Requests in all (default 200).
  --concurrency C    Clients sending at once (default 16).
  --max-tokens M     max_tokens per request (default 16).
  --url URL          Use a running server on 127.0.0.1/localhost instead of starting one.
  --api-key KEY      Bearer key for --url (a started server runs without one).
  --retries R        Retries of a 503 server_overloaded, after its Retry-After, as the openai client
                     does (default 2, the client's default).
  --json             Print one JSON object instead of the markdown table.
  -h, --help         Show this help.
Everything after -- goes to the started server (e.g. -- --no-draft --max-queue 64).
`;

const PROMPTS = [
  "What is 12 plus 7?",
  "Name three colours.",
  "Write one sentence about the sea.",
  "What is the capital of France?",
  "Give me a word that rhymes with cat.",
  "Count from one to five.",
  "Say hello politely.",
  "What day comes after Monday?",
];

function fail(msg: string): never {
  console.error(`error: ${msg}`);
  Deno.exit(1);
}

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

interface Outcome {
  ok: boolean;
  /** 503 answers that were retried before this outcome. */
  retried503: number;
  kind: string;
  latencyS: number;
  ttftS?: number;
  tokens: number;
}

async function withRetries(
  base: string,
  key: string | undefined,
  i: number,
  maxTokens: number,
  retries: number,
): Promise<Outcome> {
  for (let attempt = 0;; attempt++) {
    const o = await oneRequest(base, key, i, maxTokens);
    if (o.retryAfterS === undefined || attempt >= retries) return { ...o, retried503: attempt };
    await new Promise((r) => setTimeout(r, Math.min(60, o.retryAfterS!) * 1000));
  }
}

async function oneRequest(
  base: string,
  key: string | undefined,
  i: number,
  maxTokens: number,
): Promise<Omit<Outcome, "retried503"> & { retryAfterS?: number }> {
  const t0 = performance.now();
  const el = () => (performance.now() - t0) / 1000;
  let res: Response;
  try {
    res = await fetch(`${base}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(key ? { authorization: `Bearer ${key}` } : {}) },
      body: JSON.stringify({
        model: await modelId(base, key),
        messages: [{ role: "user", content: PROMPTS[i % PROMPTS.length] }],
        max_tokens: maxTokens,
        temperature: 0,
        stream: true,
        stream_options: { include_usage: true },
      }),
    });
  } catch (e) {
    return { ok: false, kind: `network: ${(e as Error).name}`, latencyS: el(), tokens: 0 };
  }
  if (res.status !== 200) {
    const body = await res.json().catch(() => ({}));
    const kind = `http_${res.status}_${body?.error?.code ?? "unknown"}`;
    const ra = Number(res.headers.get("retry-after"));
    const retryAfterS = kind === "http_503_server_overloaded" && ra > 0 ? ra : undefined;
    return { ok: false, kind, latencyS: el(), tokens: 0, retryAfterS };
  }
  let ttft: number | undefined, tokens = 0, done = false, sseError = "";
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  try {
    while (true) {
      const { value, done: end } = await reader.read();
      if (end) break;
      buf += value;
      let k;
      while ((k = buf.indexOf("\n\n")) >= 0) {
        const line = buf.slice(0, k);
        buf = buf.slice(k + 2);
        if (!line.startsWith("data: ")) continue;
        const data = line.slice(6);
        if (data === "[DONE]") {
          done = true;
          continue;
        }
        const ch = JSON.parse(data);
        if (ch.error) sseError = ch.error.code ?? ch.error.type ?? "error";
        if (ttft === undefined && ch.choices?.[0]?.delta?.content) ttft = el();
        if (ch.usage) tokens = ch.usage.completion_tokens;
      }
    }
  } catch (e) {
    return { ok: false, kind: `stream: ${(e as Error).name}`, latencyS: el(), tokens };
  }
  if (sseError) return { ok: false, kind: `sse_error_${sseError}`, latencyS: el(), tokens };
  if (!done) return { ok: false, kind: "stream_without_done", latencyS: el(), tokens };
  return { ok: true, kind: "ok", latencyS: el(), ttftS: ttft, tokens };
}

let cachedModel: Promise<string> | null = null;
function modelId(base: string, key: string | undefined): Promise<string> {
  cachedModel ??= fetch(`${base}/v1/models`, { headers: key ? { authorization: `Bearer ${key}` } : {} })
    .then((r) => r.json()).then((j) => j.data[0].id);
  return cachedModel;
}

async function main(): Promise<void> {
  const dd = Deno.args.indexOf("--");
  const own = dd >= 0 ? Deno.args.slice(0, dd) : Deno.args;
  const serverArgs = dd >= 0 ? Deno.args.slice(dd + 1) : [];
  let v;
  try {
    v = parseArgs({
      args: own,
      options: {
        requests: { type: "string" },
        concurrency: { type: "string" },
        "max-tokens": { type: "string" },
        url: { type: "string" },
        "api-key": { type: "string" },
        retries: { type: "string" },
        json: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (e) {
    fail(`${(e as Error).message.replace(/\s*\n\s*/g, " ")} (see --help)`);
  }
  if (v.help) {
    console.log(HELP);
    return;
  }
  const int = (name: string, s: string | undefined, def: number) => {
    if (s === undefined) return def;
    const x = Number(s);
    if (!Number.isInteger(x) || x < 1) fail(`--${name} ${JSON.stringify(s)}: expected an integer ≥ 1`);
    return x;
  };
  const N = int("requests", v.requests, 200), C = int("concurrency", v.concurrency, 16);
  const maxTokens = int("max-tokens", v["max-tokens"], 16);
  const retries = v.retries === "0" ? 0 : int("retries", v.retries, 2);
  let server: ServerProcess | null = null;
  let base: string;
  if (v.url) {
    const u = new URL(v.url);
    if (!["127.0.0.1", "localhost", "[::1]"].includes(u.hostname)) fail(`--url ${v.url}: loopback only`);
    base = u.origin;
  } else {
    console.error(`bench:serve: starting deno task serve ${serverArgs.join(" ")}`);
    server = await startServer(serverArgs);
    base = server.url;
    console.error(server.readyLine);
  }
  const key = v["api-key"];
  try {
    const warm = await withRetries(base, key, 0, maxTokens, 0);
    if (!warm.ok) fail(`warm-up request failed: ${warm.kind}`);
    const rssBefore = server ? rssOf(server.pid) : NaN;
    // /health probe while busy.
    const health: number[] = [];
    let probing = true;
    const probe = (async () => {
      while (probing) {
        const t = performance.now();
        try {
          const r = await fetch(`${base}/health`);
          await r.body?.cancel();
          if (r.status === 200) health.push(performance.now() - t);
        } catch { /* counted as missing */ }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const outcomes: Outcome[] = [];
    let next = 0;
    const t0 = performance.now();
    await Promise.all(Array.from({ length: C }, async () => {
      while (next < N) {
        const i = next++;
        outcomes.push(await withRetries(base, key, i, maxTokens, retries));
      }
    }));
    const wall = (performance.now() - t0) / 1000;
    probing = false;
    await probe;
    // Let the server settle (GC) before reading RSS.
    await new Promise((r) => setTimeout(r, 500));
    const rssAfter = server ? rssOf(server.pid) : NaN;
    const ok = outcomes.filter((o) => o.ok);
    const kinds: Record<string, number> = {};
    for (const o of outcomes) if (!o.ok) kinds[o.kind] = (kinds[o.kind] ?? 0) + 1;
    const intended = kinds["http_503_server_overloaded"] ?? 0;
    const retried = outcomes.reduce((n, o) => n + o.retried503, 0);
    const unintended = outcomes.length - ok.length - intended;
    const tokens = ok.reduce((s, o) => s + o.tokens, 0);
    const lat = ok.map((o) => o.latencyS), ttft = ok.flatMap((o) => (o.ttftS === undefined ? [] : [o.ttftS]));
    const report = {
      requests: N,
      concurrency: C,
      max_tokens: maxTokens,
      server_args: serverArgs,
      completed: ok.length,
      retries: retries,
      retried_503: retried,
      queue_full_503: intended,
      unintended_errors: unintended,
      errors_by_kind: kinds,
      wall_s: Number(wall.toFixed(2)),
      latency_p50_s: Number(pct(lat, 50).toFixed(3)),
      latency_p99_s: Number(pct(lat, 99).toFixed(3)),
      ttft_p50_s: Number(pct(ttft, 50).toFixed(3)),
      ttft_p99_s: Number(pct(ttft, 99).toFixed(3)),
      output_tokens: tokens,
      tokens_per_s: Number((tokens / wall).toFixed(1)),
      health_probes: health.length,
      health_p50_ms: Number(pct(health, 50).toFixed(1)),
      health_p99_ms: Number(pct(health, 99).toFixed(1)),
      health_max_ms: Number(Math.max(...health, NaN).toFixed(1)),
      rss_before_mib: Number((rssBefore / 2 ** 20).toFixed(1)),
      rss_after_mib: Number((rssAfter / 2 ** 20).toFixed(1)),
      rss_growth_pct: Number((100 * (rssAfter - rssBefore) / rssBefore).toFixed(1)),
    };
    if (v.json) console.log(JSON.stringify(report));
    else {
      console.log(
        `| requests | C | done | 503s retried | queue-full 503 (final) | other errors | latency p50 / p99 s | TTFT p50 / p99 s | tok/s | /health p50 / p99 ms | RSS before → after MiB |`,
      );
      console.log(`|---:|---:|---:|---:|---:|---:|---|---|---:|---|---|`);
      console.log(
        `| ${N} | ${C} | ${ok.length} | ${retried} | ${intended} | ${unintended} | ${report.latency_p50_s} / ${report.latency_p99_s} | ` +
          `${report.ttft_p50_s} / ${report.ttft_p99_s} | ${report.tokens_per_s} | ${report.health_p50_ms} / ${report.health_p99_ms} | ` +
          `${report.rss_before_mib} → ${report.rss_after_mib} (${
            report.rss_growth_pct >= 0 ? "+" : ""
          }${report.rss_growth_pct} %) |`,
      );
      if (Object.keys(kinds).length) console.log(`errors by kind: ${JSON.stringify(kinds)}`);
    }
    if (unintended > 0) Deno.exitCode = 1;
  } finally {
    if (server) await server.stop();
  }
}

await main();
// Idle keep-alive connections of the fetch pool can keep the process alive; the report is out.
Deno.exit(Deno.exitCode);
