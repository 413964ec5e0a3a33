/**
 * Regenerating training responses through any OpenAI-compatible `/v1/chat/completions` (vLLM, SGLang,
 * or `deno task serve`) instead of the in-process decoder: how a large corpus is regenerated on a
 * cluster. Each prompt's user text is sent as one user message with the same sampling as the
 * in-process path (temperature, top-p, top-k when set, seed + i, max tokens clamped to the context
 * left), so at T=0 the responses are the same and go into the same cache format
 * (`regenerateWith`). Response token ids come from the server when it returns them (vLLM's
 * `return_token_ids` extension, which `deno task serve` implements), else from tokenizing the text
 * with the target's tokenizer; a response that stopped on eos gets the eos id appended as in the
 * in-process path (the server's `stop_reason` when it is a token id, else the model's first eos id).
 * 429/503 and network errors are retried (honouring Retry-After); anything else is one error line.
 * @module
 */
import type { ModelDir } from "@gto/core";
import type { RegenerateSettings, Responder } from "@gto/core/train";

/** Where and how to regenerate. */
export interface EndpointOptions {
  /** Base URL (`http://host:8000/v1`, `http://host:8000`, or the full `/v1/chat/completions`). */
  url: string;
  /** Model id to request (default: the first of `GET /v1/models`). */
  model?: string | null;
  /** Bearer key (default: $OPENAI_API_KEY when set). */
  apiKey?: string;
  /** Most attempts per request for retryable failures (default 6). */
  attempts?: number;
  /** Called once if the server's prompt length differs from ours (a different chat template). */
  onWarn?: (message: string) => void;
}

/** An endpoint failure that retrying will not fix. */
export class EndpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "EndpointError";
  }
}

/** The `/v1` base of `url`. */
export function apiBase(url: string): string {
  let u = url.trim().replace(/\/+$/, "");
  try {
    new URL(u);
  } catch {
    throw new EndpointError(
      `--regen-endpoint ${JSON.stringify(url)}: not a URL (e.g. http://127.0.0.1:8000/v1)`,
    );
  }
  if (u.endsWith("/chat/completions")) u = u.slice(0, -"/chat/completions".length);
  if (!u.endsWith("/v1")) u += "/v1";
  return u;
}

function headers(key: string | undefined): Record<string, string> {
  return { "content-type": "application/json", ...(key ? { authorization: `Bearer ${key}` } : {}) };
}

/** The model id to request: `model`, or the first one the endpoint lists. */
export async function resolveModel(
  base: string,
  model: string | null | undefined,
  key?: string,
): Promise<string> {
  if (model) return model;
  let res: Response;
  try {
    res = await fetch(`${base}/models`, { headers: headers(key) });
  } catch (e) {
    throw new EndpointError(`${base}/models: ${(e as Error).message}`);
  }
  const body = await res.json().catch(() => null);
  const id = body?.data?.[0]?.id;
  if (!res.ok || typeof id !== "string") {
    throw new EndpointError(
      `${base}/models: HTTP ${res.status}${
        body?.error?.message ? `: ${body.error.message}` : ""
      } (pass --regen-model)`,
    );
  }
  return id;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A `Responder` for `regenerateWith` that asks the endpoint. `texts[i]` is the user text of prompt i
 * (whose rendered ids the cache records).
 */
export function endpointResponder(
  dir: ModelDir,
  texts: readonly string[],
  settings: RegenerateSettings,
  model: string,
  opts: EndpointOptions,
): Responder {
  const base = apiBase(opts.url);
  const key = opts.apiKey ?? Deno.env.get("OPENAI_API_KEY");
  const attempts = opts.attempts ?? 6;
  let warned = false;
  return async (i, prompt, maxTokens) => {
    const body = JSON.stringify({
      model,
      messages: [{ role: "user", content: texts[i] }],
      max_tokens: maxTokens,
      temperature: settings.temperature,
      top_p: settings.topP,
      ...(settings.topK > 0 ? { top_k: settings.topK } : {}),
      seed: settings.seed + i,
      return_token_ids: true,
    });
    for (let attempt = 1;; attempt++) {
      let res: Response;
      try {
        res = await fetch(`${base}/chat/completions`, { method: "POST", headers: headers(key), body });
      } catch (e) {
        if (attempt >= attempts) throw new EndpointError(`${base}/chat/completions: ${(e as Error).message}`);
        await sleep(500 * 2 ** attempt);
        continue;
      }
      const json = await res.json().catch(() => null);
      if (res.status === 429 || res.status >= 500) {
        if (attempt >= attempts) {
          throw new EndpointError(`${base}/chat/completions: HTTP ${res.status} after ${attempts} attempts`);
        }
        const ra = Number(res.headers.get("retry-after"));
        await sleep(ra > 0 && ra <= 60 ? ra * 1000 : 500 * 2 ** attempt);
        continue;
      }
      if (!res.ok) {
        throw new EndpointError(
          `${base}/chat/completions: HTTP ${res.status}: ${
            json?.error?.message ?? "no error message"
          } (prompt ${i})`,
        );
      }
      const choice = json?.choices?.[0];
      const text = choice?.message?.content;
      if (typeof text !== "string") {
        throw new EndpointError(`${base}/chat/completions: no message content (prompt ${i})`);
      }
      if (
        !warned && typeof json.usage?.prompt_tokens === "number" && json.usage.prompt_tokens !== prompt.length
      ) {
        warned = true;
        opts.onWarn?.(
          `the endpoint counted ${json.usage.prompt_tokens} prompt tokens for prompt ${i}, we render ${prompt.length}: ` +
            `its chat template differs from the target's (responses are still cached with our prompt ids)`,
        );
      }
      const ids: number[] = Array.isArray(choice.token_ids) && choice.token_ids.every(Number.isInteger)
        ? [...choice.token_ids]
        : dir.tokenizer.encode(text, { addSpecialTokens: false });
      if (choice.finish_reason === "stop") {
        ids.push(typeof choice.stop_reason === "number" ? choice.stop_reason : settings.eosIds[0]);
      }
      return ids;
    }
  };
}
