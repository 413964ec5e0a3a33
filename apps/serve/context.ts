/**
 * What every route shares: the engine (or its pending load), the resolved server options, the
 * admission queue, the metrics and the logger. Built once by `createApp`.
 * @module
 */
import { ApiError } from "./errors.ts";
import type { ServerMetrics } from "./metrics.ts";
import type { AdmissionQueue } from "./queue.ts";
import type { ServeEngine } from "./types.ts";

/** Server options (all defaulted by `createApp`). */
export interface ServeOptions {
  /** Model ids accepted in `model` (the first is reported in responses). Default: the engine's model name. */
  servedModelNames?: string[];
  /** Require `Authorization: Bearer <key>` on the API routes. */
  apiKey?: string;
  /** Most requests waiting for the engine (default 8). */
  maxQueue?: number;
  /** Longest wait for the engine, in ms (default 60 000). */
  queueTimeoutMs?: number;
  /** Largest request body in bytes (default 1 MiB). */
  maxBody?: number;
  /** Chat `max_tokens` when the request gives none: the remaining context capped at this (default 512). */
  maxTokensDefault?: number;
  /** Log sink (default: none). */
  log?: (line: string) => void;
}

/** Resolved options. */
export interface ResolvedOptions {
  apiKey?: string;
  maxQueue: number;
  queueTimeoutMs: number;
  maxBody: number;
  maxTokensDefault: number;
  log: (line: string) => void;
}

/** The shared state of one app. */
export interface ServerContext {
  /** The loaded engine; throws 503 "Loading model" until it is ready. */
  engine(): ServeEngine;
  /** Whether the engine is loaded. */
  ready(): boolean;
  /** Accepted model ids. */
  modelNames(): string[];
  /** `system_fingerprint` of responses (weights, draft, tree, adapter). */
  fingerprint(): string;
  readonly opts: ResolvedOptions;
  readonly queue: AdmissionQueue;
  readonly metrics: ServerMetrics;
  /** Log an unknown request key once. */
  unknownKey(key: string): void;
}

/** 503 while the model loads (llama.cpp's envelope and wording). */
export function loadingError(): ApiError {
  return new ApiError(503, "Loading model", { type: "unavailable_error", headers: { "retry-after": "5" } });
}
