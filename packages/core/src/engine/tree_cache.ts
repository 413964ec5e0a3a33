/**
 * The auto tree's calibration cache: one small JSON file per (adapter, target, draft) under
 * `<cacheDir>/auto-tree/` (default cacheDir: `$GTO_CACHE_DIR`, else `$XDG_CACHE_HOME/gto`, else
 * `~/.cache/gto`). Costs depend on the adapter, so the cache lives with the user, not beside the
 * draft. The key hashes the adapter description, the format version and both directories'
 * fingerprints: per file (config.json, *.safetensors) its name, size and — up to 256 MiB — the
 * SHA-256 of its bytes (larger files: size and mtime, so a 10 GB target is not re-read at every
 * load). A changed model or draft therefore gets a new key; a stale or unreadable file is ignored
 * and recalibrated. Only the measurements are stored: the choice is recomputed from them at load,
 * so a changed selection rule takes effect without recalibrating.
 * @module
 */
import type { AcceptanceProfile, TreeCostTable } from "./auto_tree.ts";

/**
 * Bump when the measurements' meaning changes, or when the engine's kernels change the costs enough
 * that old files would decide wrongly (old files are then ignored). 3: the software-adapter kernels
 * of 2026-11-30 (attention_sw, rms_norm / argmax lanes, fitted direct matmul) cut tree verification
 * and drafting 2–3× on llvmpipe (docs/engine.md §6). 4: the draft extension's lm_head runs on one row
 * (was the whole accepted path), and small targets dispatch inline on llvmpipe (gpu/software_threads.ts).
 * 5: the fused draft forward (draft_layer.ts): 8–12 dispatches per draft level instead of 15, which
 * matters where dispatches cost (hardware GPUs; on llvmpipe drafting ms is unchanged within noise).
 * 6: the plain step is timed like the phases (GPU time of 32 steps in one submit, latency subtracted);
 * with inline dispatch the old generate()-based figure was ~1.5× too fast.
 */
export const TREE_CACHE_VERSION = 6;
const HASH_LIMIT = 256 * 2 ** 20;

/** What one cache file holds. */
export interface TreeCacheEntry {
  /** {@link TREE_CACHE_VERSION}. */
  version: number;
  /** `describeGpu` of the adapter. */
  adapter: string;
  /** Fingerprint of the target directory. */
  target: string;
  /** Fingerprint of the draft directory. */
  draft: string;
  /** Measured costs. */
  costs: TreeCostTable;
  /** Measured acceptance (null: not needed on this adapter, see `calibrate.ts`). */
  acceptance: AcceptanceProfile | null;
  /** Seconds the calibration took. */
  calibrationSeconds: number;
  /** ISO date of the calibration. */
  date: string;
}

async function sha256Hex(data: Uint8Array | string): Promise<string> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as BufferSource));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Fingerprint of a model directory's config.json and *.safetensors (see the module comment). */
export async function fingerprintDir(dir: string): Promise<string> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && (e.name === "config.json" || e.name.endsWith(".safetensors"))) names.push(e.name);
  }
  names.sort();
  const parts: string[] = [];
  for (const name of names) {
    const path = `${dir}/${name}`;
    const st = await Deno.stat(path);
    const id = st.size <= HASH_LIMIT
      ? await sha256Hex(await Deno.readFile(path))
      : `mtime:${st.mtime?.getTime() ?? 0}`;
    parts.push(`${name}:${st.size}:${id}`);
  }
  return await sha256Hex(parts.join("\n"));
}

/** The default cache directory (see the module comment); null when there is no home. */
export function defaultCacheDir(): string | null {
  const env = (k: string) => {
    try {
      return Deno.env.get(k) || undefined;
    } catch {
      return undefined; // no --allow-env
    }
  };
  const own = env("GTO_CACHE_DIR");
  if (own) return own;
  const xdg = env("XDG_CACHE_HOME");
  if (xdg) return `${xdg}/gto`;
  const home = env("HOME");
  return home ? `${home}/.cache/gto` : null;
}

/** The cache file of (adapter, target, draft) under `cacheDir`. */
export async function treeCachePath(
  cacheDir: string,
  adapter: string,
  target: string,
  draft: string,
): Promise<string> {
  const key = await sha256Hex(JSON.stringify([TREE_CACHE_VERSION, adapter, target, draft]));
  return `${cacheDir.replace(/\/+$/, "")}/auto-tree/${key.slice(0, 24)}.json`;
}

/** Read an entry; null when absent, unreadable, of another version or for other fingerprints. */
export async function readTreeCache(
  path: string,
  expect: { adapter: string; target: string; draft: string },
): Promise<TreeCacheEntry | null> {
  let e: TreeCacheEntry;
  try {
    e = JSON.parse(await Deno.readTextFile(path));
  } catch {
    return null;
  }
  const ok = typeof e === "object" && e !== null && e.version === TREE_CACHE_VERSION &&
    e.adapter === expect.adapter && e.target === expect.target && e.draft === expect.draft &&
    typeof e.costs?.plainStepMs === "number" && Array.isArray(e.costs.verify) &&
    Array.isArray(e.costs.drafting) && e.costs.drafting.length > 0 &&
    (e.acceptance === null || Array.isArray(e.acceptance?.p));
  return ok ? e : null;
}

/** Write an entry (atomically: a temporary file renamed into place). */
export async function writeTreeCache(path: string, entry: TreeCacheEntry): Promise<void> {
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  const tmp = `${path}.${crypto.randomUUID()}.tmp`;
  await Deno.writeTextFile(tmp, JSON.stringify(entry, null, 1) + "\n");
  await Deno.rename(tmp, path);
}
