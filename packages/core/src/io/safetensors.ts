/**
 * Safetensors reading and writing. Weights are the largest and least forgiving input the engine
 * takes: a wrong offset or dtype does not crash, it silently produces garbage logits. So the parser
 * checks every header field against the file (lengths, dtypes, shapes, offsets, overlaps, shard
 * index) and fails with one line naming the file and tensor, and the store hands out typed copies
 * (f32 or raw f16 bits) with an optional shape check at the point of use.
 *
 * Format (https://github.com/huggingface/safetensors): u64 little-endian header length `N`, `N`
 * bytes of JSON `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}`, then
 * the data section; offsets are relative to the start of the data section. Sharded checkpoints add
 * `model.safetensors.index.json` whose `weight_map` maps tensor name → shard file name.
 *
 * Byte order: tensor data is little-endian, and so is every host we run on; typed arrays are built
 * by copying bytes, which also removes any alignment requirement on the data section.
 * @module
 */

import { ModelLoadError, ShapeError } from "../errors.ts";
import {
  describe,
  errText,
  isObject,
  joinPath,
  parseJsonObject,
  pathKind,
  readBytes,
  readText,
} from "./_fs.ts";

/** Element types a safetensors file may hold that this loader accepts. */
export type SafetensorsDType = "F32" | "F16" | "BF16" | "I32" | "I64" | "U8" | "BOOL";

/** Bytes per element of each supported dtype. */
export const DTYPE_BYTES: Readonly<Record<SafetensorsDType, number>> = {
  F32: 4,
  F16: 2,
  BF16: 2,
  I32: 4,
  I64: 8,
  U8: 1,
  BOOL: 1,
};

/** One tensor of a loaded checkpoint. */
export interface TensorEntry {
  /** Tensor name as in the header, e.g. `model.layers.0.self_attn.q_proj.weight`. */
  name: string;
  /** Element type. */
  dtype: SafetensorsDType;
  /** Shape, outermost first (row-major). */
  shape: number[];
  /** The file that holds the tensor (the shard, for sharded checkpoints). */
  file: string;
  /** View into the file's bytes covering exactly this tensor's data span (not a copy; do not mutate). */
  bytes: Uint8Array;
}

/** A tensor to write with {@link writeSafetensors}. */
export interface TensorToWrite {
  /** Tensor name. */
  name: string;
  /** Element type; `data.byteLength` must equal `product(shape) * DTYPE_BYTES[dtype]`. */
  dtype: SafetensorsDType;
  /** Shape, outermost first. */
  shape: number[];
  /** Raw little-endian element data (e.g. a Float32Array for F32, a Uint16Array of bits for F16). */
  data: ArrayBufferView;
}

/** Largest header accepted (the reference implementation's limit is 100 MB). */
const MAX_HEADER_BYTES = 100_000_000;

const INDEX_FILE = "model.safetensors.index.json";
const SINGLE_FILE = "model.safetensors";

/**
 * The tensors of a checkpoint (one file or all shards), by name. Accessors copy: callers get arrays
 * they own, aligned and independent of the file buffer.
 */
export class WeightStore {
  /** The file or index the store was loaded from; named in errors about missing tensors. */
  readonly source: string;
  readonly #entries: Map<string, TensorEntry>;

  /** Wrap parsed entries; `source` is the path errors about missing tensors will name. */
  constructor(source: string, entries: Map<string, TensorEntry>) {
    this.source = source;
    this.#entries = entries;
  }

  /** Tensor names in header order (shards in index order). */
  names(): string[] {
    return [...this.#entries.keys()];
  }

  /** Whether a tensor of this name exists. */
  has(name: string): boolean {
    return this.#entries.has(name);
  }

  /** The entry for `name`; throws ModelLoadError naming the file and tensor when it is missing. */
  get(name: string): TensorEntry {
    const e = this.#entries.get(name);
    if (!e) {
      throw new ModelLoadError(
        this.source,
        `tensor "${name}" not found (${this.#entries.size} tensors present)`,
      );
    }
    return e;
  }

  /**
   * The tensor as float32 (a fresh copy), converting from F16 or BF16. Throws ModelLoadError naming
   * the tensor when its dtype is not a float type or its shape differs from `expectShape`.
   */
  f32(name: string, expectShape?: number[]): Float32Array {
    const e = this.#floatEntry(name, expectShape);
    if (e.dtype === "F32") return new Float32Array(copyBuffer(e.bytes));
    const bits = new Uint16Array(copyBuffer(e.bytes));
    return e.dtype === "F16" ? f16ArrayToF32(bits) : bf16ArrayToF32(bits);
  }

  /**
   * The tensor as raw IEEE half-precision bits (a fresh copy); F32 and BF16 are converted with
   * round-to-nearest-even (overflow becomes ±Inf). Same dtype/shape checks as {@link WeightStore.f32}.
   */
  f16Bits(name: string, expectShape?: number[]): Uint16Array {
    const e = this.#floatEntry(name, expectShape);
    if (e.dtype === "F16") return new Uint16Array(copyBuffer(e.bytes));
    const f = e.dtype === "F32"
      ? new Float32Array(copyBuffer(e.bytes))
      : bf16ArrayToF32(new Uint16Array(copyBuffer(e.bytes)));
    return f32ArrayToF16Bits(f);
  }

  #floatEntry(name: string, expectShape?: number[]): TensorEntry {
    const e = this.get(name);
    if (e.dtype !== "F32" && e.dtype !== "F16" && e.dtype !== "BF16") {
      throw new ModelLoadError(
        e.file,
        `tensor "${name}" has dtype ${e.dtype}; expected a float dtype (F32, F16 or BF16)`,
      );
    }
    if (expectShape && !sameShape(e.shape, expectShape)) {
      throw new ModelLoadError(
        e.file,
        `tensor "${name}" has shape ${fmtShape(e.shape)}; expected ${fmtShape(expectShape)}`,
      );
    }
    return e;
  }
}

/** Format a shape as `[a, b]` for messages. */
export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(", ")}]`;
}

/** Whether two shapes are equal element by element. */
export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * Parse the bytes of one safetensors file. `file` is only used in error messages and recorded in
 * each entry. Entries are views into `data`. Throws ModelLoadError on any inconsistency.
 */
export function parseSafetensors(file: string, data: Uint8Array): Map<string, TensorEntry> {
  if (data.byteLength < 8) {
    throw new ModelLoadError(
      file,
      `file too short for a safetensors header (${data.byteLength} bytes, need ≥ 8)`,
    );
  }
  const headerLen = new DataView(data.buffer, data.byteOffset, 8).getBigUint64(0, true);
  if (headerLen > BigInt(MAX_HEADER_BYTES)) {
    throw new ModelLoadError(
      file,
      `header length ${headerLen} is absurdly large (limit ${MAX_HEADER_BYTES} bytes)`,
    );
  }
  const n = Number(headerLen);
  if (8 + n > data.byteLength) {
    throw new ModelLoadError(
      file,
      `header length ${n} runs past the end of the file (${data.byteLength} bytes); file truncated?`,
    );
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(data.subarray(8, 8 + n));
  } catch (e) {
    throw new ModelLoadError(file, `header is not valid UTF-8: ${errText(e)}`, { cause: e });
  }
  const header = parseJsonObject(file, text, "safetensors header");
  const body = data.subarray(8 + n);
  const entries = new Map<string, TensorEntry>();
  const spans: { name: string; begin: number; end: number }[] = [];
  for (const [name, raw] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    if (!isObject(raw)) {
      throw new ModelLoadError(file, `tensor "${name}": header entry is ${describe(raw)}, not an object`);
    }
    const dtype = raw.dtype;
    if (typeof dtype !== "string" || !(dtype in DTYPE_BYTES)) {
      throw new ModelLoadError(
        file,
        `tensor "${name}": unknown dtype ${describe(dtype)} (supported: ${
          Object.keys(DTYPE_BYTES).join(", ")
        })`,
      );
    }
    const shape = raw.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new ModelLoadError(
        file,
        `tensor "${name}": shape ${JSON.stringify(shape)} is not a list of non-negative integers`,
      );
    }
    const offs = raw.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o))) {
      throw new ModelLoadError(
        file,
        `tensor "${name}": data_offsets ${JSON.stringify(offs)} is not a pair of integers`,
      );
    }
    const [begin, end] = offs as [number, number];
    if (begin < 0 || end < begin) {
      throw new ModelLoadError(
        file,
        `tensor "${name}": data_offsets [${begin}, ${end}] are negative or reversed`,
      );
    }
    if (end > body.byteLength) {
      throw new ModelLoadError(
        file,
        `tensor "${name}": data_offsets [${begin}, ${end}] run past the end of the data section (${body.byteLength} bytes)`,
      );
    }
    const dt = dtype as SafetensorsDType;
    const want = (shape as number[]).reduce((a, b) => a * b, 1) * DTYPE_BYTES[dt];
    if (want !== end - begin) {
      throw new ModelLoadError(
        file,
        `tensor "${name}": shape ${
          fmtShape(shape as number[])
        } × ${dt} needs ${want} bytes but data_offsets span ${end - begin}`,
      );
    }
    entries.set(name, {
      name,
      dtype: dt,
      shape: [...(shape as number[])],
      file,
      bytes: body.subarray(begin, end),
    });
    spans.push({ name, begin, end });
  }
  spans.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let prev: { name: string; begin: number; end: number } | undefined; // the span reaching furthest so far
  for (const s of spans) {
    if (s.end === s.begin) continue; // empty tensors occupy no bytes
    if (prev && s.begin < prev.end) {
      throw new ModelLoadError(
        file,
        `tensor "${s.name}": data_offsets [${s.begin}, ${s.end}] overlap tensor "${prev.name}" [${prev.begin}, ${prev.end}]`,
      );
    }
    if (!prev || s.end > prev.end) prev = s;
  }
  return entries;
}

/**
 * Load a checkpoint. `pathOrDir` may be a `.safetensors` file, a `model.safetensors.index.json`,
 * or a directory holding `model.safetensors` (preferred) or `model.safetensors.index.json`.
 */
export async function loadSafetensors(pathOrDir: string): Promise<WeightStore> {
  const kind = await pathKind(pathOrDir);
  if (kind === "missing") throw new ModelLoadError(pathOrDir, "weights path does not exist");
  if (kind === "file") {
    return pathOrDir.endsWith(".index.json") ? await loadSharded(pathOrDir) : await loadSingle(pathOrDir);
  }
  const single = joinPath(pathOrDir, SINGLE_FILE);
  if (await pathKind(single) === "file") return await loadSingle(single);
  const index = joinPath(pathOrDir, INDEX_FILE);
  if (await pathKind(index) === "file") return await loadSharded(index);
  throw new ModelLoadError(pathOrDir, `no ${SINGLE_FILE} or ${INDEX_FILE} in the directory`);
}

async function loadSingle(file: string): Promise<WeightStore> {
  return new WeightStore(file, parseSafetensors(file, await readBytes(file, "weights")));
}

async function loadSharded(indexFile: string): Promise<WeightStore> {
  const index = parseJsonObject(indexFile, await readText(indexFile, "shard index"), "shard index");
  const map = index.weight_map;
  if (!isObject(map)) {
    throw new ModelLoadError(
      indexFile,
      `field "weight_map" is ${describe(map)}; expected an object of tensor → shard`,
    );
  }
  const dir = indexFile.includes("/") ? indexFile.slice(0, indexFile.lastIndexOf("/")) : ".";
  const shards = new Map<string, Map<string, TensorEntry>>();
  const entries = new Map<string, TensorEntry>();
  for (const [name, shard] of Object.entries(map)) {
    if (
      typeof shard !== "string" || shard === "" || shard.startsWith("/") || shard.split("/").includes("..")
    ) {
      throw new ModelLoadError(
        indexFile,
        `weight_map entry for tensor "${name}" is ${describe(shard)}; expected a shard file name`,
      );
    }
    let parsed = shards.get(shard);
    if (!parsed) {
      const path = joinPath(dir, shard);
      if (await pathKind(path) !== "file") {
        throw new ModelLoadError(
          indexFile,
          `weight_map names shard "${shard}" for tensor "${name}", but ${path} does not exist`,
        );
      }
      parsed = parseSafetensors(path, await readBytes(path, "weights shard"));
      shards.set(shard, parsed);
    }
    const e = parsed.get(name);
    if (!e) {
      throw new ModelLoadError(
        joinPath(dir, shard),
        `tensor "${name}" is listed in ${INDEX_FILE} but missing from this shard`,
      );
    }
    entries.set(name, e);
  }
  return new WeightStore(indexFile, entries);
}

/**
 * Write tensors to a safetensors file atomically (write `path.tmp-…`, then rename). Tensors are laid
 * out by element size, largest first, after a header space-padded to 8 bytes, so every tensor is
 * naturally aligned in the file. Throws ShapeError when a tensor's byte length does not match its
 * shape and dtype or a name repeats.
 */
export async function writeSafetensors(
  path: string,
  tensors: TensorToWrite[],
  metadata?: Record<string, string>,
): Promise<void> {
  const seen = new Set<string>();
  for (const t of tensors) {
    if (t.name === "__metadata__" || t.name === "" || seen.has(t.name)) {
      throw new ShapeError(
        `writeSafetensors(${path}): tensor name "${t.name}" is empty, reserved or repeated`,
      );
    }
    seen.add(t.name);
    if (!(t.dtype in DTYPE_BYTES)) {
      throw new ShapeError(`writeSafetensors(${path}): tensor "${t.name}" has unknown dtype ${t.dtype}`);
    }
    const want = t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype];
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0) || want !== t.data.byteLength) {
      throw new ShapeError(
        `writeSafetensors(${path}): tensor "${t.name}" shape ${
          fmtShape(t.shape)
        } × ${t.dtype} needs ${want} bytes, data has ${t.data.byteLength}`,
      );
    }
  }
  const order = [...tensors].sort((a, b) => DTYPE_BYTES[b.dtype] - DTYPE_BYTES[a.dtype]); // stable
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = { ...metadata };
  let offset = 0;
  for (const t of order) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.byteLength / 8) * 8;
  if (padded !== json.byteLength) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const out = new Uint8Array(8 + json.byteLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.byteLength), true);
  out.set(json, 8);
  let at = 8 + json.byteLength;
  for (const t of order) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  const tmp = `${path}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  try {
    await Deno.writeFile(tmp, out);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

// ---- float conversions ---------------------------------------------------------------------------

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);
let f16Table: Float32Array | undefined;

/** Decode IEEE half-precision bits (0..65535) to a number; handles subnormals, ±0, ±Inf and NaN. */
export function f16BitsToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/**
 * Encode a number as IEEE half-precision bits, rounding to nearest even (the value is first rounded
 * to f32). Values beyond the f16 range become ±Inf, values below half the smallest subnormal ±0, NaN
 * a quiet NaN.
 */
export function f32ToF16Bits(value: number): number {
  scratchF32[0] = value;
  const x = scratchU32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 112; // f16 biased exponent
  if (e >= 0x1f) return sign | 0x7c00;
  if (e >= 1) {
    let h = (e << 10) | (mant >>> 13);
    const rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) h++; // a carry into the exponent is correct (up to Inf)
    return sign | h;
  }
  // Subnormal f16: value = m · 2^-24, with m = (1.mant · 2^23) >> (14 - e).
  const s = 14 - e;
  if (s > 24) return sign;
  const full = mant | 0x800000;
  let h = full >>> s;
  const rest = full & ((1 << s) - 1);
  const half = 1 << (s - 1);
  if (rest > half || (rest === half && (h & 1))) h++;
  return sign | h;
}

/** Decode bfloat16 bits (the top 16 bits of an f32) to a number. */
export function bf16BitsToF32(bits: number): number {
  scratchU32[0] = (bits & 0xffff) << 16;
  return scratchF32[0];
}

/** Decode an array of f16 bits to a new Float32Array (table-driven). */
export function f16ArrayToF32(bits: Uint16Array): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) f16Table[i] = f16BitsToF32(i);
  }
  const t = f16Table;
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = t[bits[i]];
  return out;
}

/** Decode an array of bf16 bits to a new Float32Array. */
export function bf16ArrayToF32(bits: Uint16Array): Float32Array {
  const u = new Uint32Array(bits.length);
  for (let i = 0; i < bits.length; i++) u[i] = bits[i] << 16;
  return new Float32Array(u.buffer);
}

/** Encode an array of f32 values to a new Uint16Array of f16 bits (round-to-nearest-even). */
export function f32ArrayToF16Bits(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = f32ToF16Bits(values[i]);
  return out;
}

function copyBuffer(bytes: Uint8Array): ArrayBuffer {
  return bytes.slice().buffer;
}
