/**
 * Test helpers for the io loaders: the bundled tiny model's path, a way to copy it into a temp dir
 * to corrupt one file at a time, and an assertion that a load failed with a ModelLoadError whose
 * one-line message names the file and the tensor/field at fault.
 * @module
 */

import assert from "node:assert/strict";
import { ModelLoadError } from "../errors.ts";

/** Absolute path of the bundled `models/tiny` directory at the repo root. */
export const TINY_DIR: string = decodeURIComponent(
  new URL("../../../../models/tiny", import.meta.url).pathname,
);

const made: string[] = [];
globalThis.addEventListener("unload", () => {
  for (const d of made) {
    try {
      Deno.removeSync(d, { recursive: true });
    } catch { /* already gone */ }
  }
});

/** A fresh temp dir, removed when the test process exits. */
export async function tempDir(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "gto_io_" });
  made.push(dir);
  return dir;
}

/** Copy the files of the tiny model (optionally only `names`) into a fresh temp dir and return it. */
export async function copyTiny(names?: string[]): Promise<string> {
  const dir = await tempDir();
  for await (const e of Deno.readDir(TINY_DIR)) {
    if (e.isFile && (!names || names.includes(e.name))) {
      await Deno.copyFile(`${TINY_DIR}/${e.name}`, `${dir}/${e.name}`);
    }
  }
  return dir;
}

/**
 * Await `p`, expecting a ModelLoadError whose `file` ends with `fileSuffix` and whose message
 * contains every string of `mentions` and is a single line. Returns the error.
 */
export async function assertLoadError(
  p: Promise<unknown> | (() => unknown),
  fileSuffix: string,
  ...mentions: string[]
): Promise<ModelLoadError> {
  let err: unknown;
  try {
    await (typeof p === "function" ? p() : p);
  } catch (e) {
    err = e;
  }
  assert.ok(
    err instanceof ModelLoadError,
    `expected ModelLoadError, got ${err instanceof Error ? err.stack : err}`,
  );
  assert.ok(err.file.endsWith(fileSuffix), `error file ${err.file} should end with ${fileSuffix}`);
  assert.ok(err.message.includes(err.file), `message should name the file: ${err.message}`);
  for (const m of mentions) assert.ok(err.message.includes(m), `message should mention ${m}: ${err.message}`);
  assert.ok(!err.message.includes("\n"), `message should be one line: ${err.message}`);
  return err;
}
