/**
 * Small file-system helpers shared by the loaders in this folder. They exist so that every way a
 * model file can be unusable (missing, a directory, unreadable, not JSON) turns into one
 * `ModelLoadError` naming the file, instead of a bare `Deno.errors.NotFound` without context.
 * @module
 */

import { ModelLoadError } from "../errors.ts";

/** Kind of a path on disk, or `"missing"` when nothing is there. */
export type PathKind = "file" | "dir" | "missing";

/** Stat `path` and say whether it is a file, a directory or missing; other failures become ModelLoadError. */
export async function pathKind(path: string): Promise<PathKind> {
  try {
    const st = await Deno.stat(path);
    return st.isDirectory ? "dir" : "file";
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return "missing";
    throw new ModelLoadError(path, `cannot stat: ${errText(e)}`, { cause: e });
  }
}

/** Read a whole file as bytes; `what` says what the file is for ("weights", "tokenizer"). */
export async function readBytes(path: string, what: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (e) {
    throw new ModelLoadError(path, `cannot read ${what} file: ${ioReason(e)}`, { cause: e });
  }
}

/** Read a whole file as UTF-8 text; `what` says what the file is for. */
export async function readText(path: string, what: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    throw new ModelLoadError(path, `cannot read ${what} file: ${ioReason(e)}`, { cause: e });
  }
}

/** Read and parse a JSON file whose top level must be an object. */
export async function readJsonObject(path: string, what: string): Promise<Record<string, unknown>> {
  return parseJsonObject(path, await readText(path, what), what);
}

/** Parse `text` (the contents of `path`) as JSON whose top level must be an object. */
export function parseJsonObject(path: string, text: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new ModelLoadError(path, `${what} is not valid JSON: ${errText(e)}`, { cause: e });
  }
  if (!isObject(value)) {
    throw new ModelLoadError(path, `${what} must be a JSON object, got ${describe(value)}`);
  }
  return value;
}

/** True for plain JSON objects (not arrays, not null). */
export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A short description of a JSON value for error messages: `array`, `null`, `string "x"`, ... */
export function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "string") return `string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + "…" : v)}`;
  if (typeof v === "number" || typeof v === "boolean") return `${typeof v} ${v}`;
  return typeof v === "object" ? "an object" : typeof v;
}

/** Message of an unknown thrown value. */
export function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Join a directory and a file name with exactly one `/`. */
export function joinPath(dir: string, name: string): string {
  return dir.endsWith("/") ? dir + name : `${dir}/${name}`;
}

function ioReason(e: unknown): string {
  if (e instanceof Deno.errors.NotFound) return "file not found";
  if (e instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (e instanceof Deno.errors.IsADirectory) return "is a directory";
  return errText(e);
}
