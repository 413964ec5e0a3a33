import assert from "node:assert/strict";
import { ShapeError } from "../errors.ts";
import {
  bf16BitsToF32,
  f16ArrayToF32,
  f16BitsToF32,
  f32ToF16Bits,
  loadSafetensors,
  parseSafetensors,
  type TensorToWrite,
  writeSafetensors,
} from "./safetensors.ts";
import { assertLoadError, tempDir, TINY_DIR } from "./_testing.ts";

/** Build a safetensors file from a raw header object and a data section. */
function rawFile(header: unknown, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const json = new TextEncoder().encode(typeof header === "string" ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

Deno.test("f16/bf16 helpers: known values and rounding", () => {
  assert.equal(f32ToF16Bits(1), 0x3c00);
  assert.equal(f32ToF16Bits(-2), 0xc000);
  assert.equal(f32ToF16Bits(65504), 0x7bff);
  assert.equal(f32ToF16Bits(65520), 0x7c00); // halfway to 2^16 rounds (to even) up to Inf
  assert.equal(f32ToF16Bits(65519), 0x7bff);
  assert.equal(f32ToF16Bits(1e9), 0x7c00);
  assert.equal(f32ToF16Bits(-Infinity), 0xfc00);
  assert.equal(f32ToF16Bits(-0), 0x8000);
  assert.equal(f32ToF16Bits(2 ** -24), 0x0001);
  assert.equal(f32ToF16Bits(2 ** -25), 0x0000); // tie → even (0)
  assert.equal(f32ToF16Bits(3 * 2 ** -26), 0x0001);
  assert.equal(f32ToF16Bits(3 * 2 ** -25), 0x0002); // 1.5 ulp → even (2)
  assert.equal(f32ToF16Bits(1 + 2 ** -11), 0x3c00); // tie → even
  assert.equal(f32ToF16Bits(1 + 3 * 2 ** -11), 0x3c02); // tie → even (up)
  assert.equal(f32ToF16Bits(2 ** -14 - 2 ** -25), 0x0400); // rounds up into the smallest normal
  assert.equal(f32ToF16Bits(1e-10), 0);
  assert.ok((f32ToF16Bits(NaN) & 0x7c00) === 0x7c00 && (f32ToF16Bits(NaN) & 0x3ff) !== 0);
  assert.equal(f16BitsToF32(0x3555), 0.333251953125);
  assert.equal(f16BitsToF32(0x0001), 2 ** -24);
  assert.equal(f16BitsToF32(0xfc00), -Infinity);
  assert.ok(Number.isNaN(f16BitsToF32(0x7e00)));
  assert.equal(bf16BitsToF32(0x3f80), 1);
  assert.equal(bf16BitsToF32(0x4049), 3.140625);
  // Every finite f16 survives f16 → f32 → f16, and the table path agrees with the scalar one.
  const all = new Uint16Array(65536).map((_, i) => i);
  const table = f16ArrayToF32(all);
  for (let i = 0; i < 65536; i++) {
    const v = f16BitsToF32(i);
    if (Number.isNaN(v)) continue;
    assert.equal(table[i], v);
    assert.equal(f32ToF16Bits(v), i, `bits ${i.toString(16)}`);
  }
});

Deno.test("writeSafetensors → loadSafetensors round trip, all dtypes, f32/f16 accessors", async () => {
  const dir = await tempDir();
  const f32 = new Float32Array([1, -2.5, 3.25, 65520, 1e-8, 0.1]);
  const f16 = new Uint16Array([0x3c00, 0xc000, 0x7bff]);
  const bf16 = new Uint16Array([0x3f80, 0x4049]);
  const tensors: TensorToWrite[] = [
    { name: "b", dtype: "BOOL", shape: [3], data: new Uint8Array([1, 0, 1]) },
    { name: "h", dtype: "F16", shape: [3], data: f16 },
    { name: "w", dtype: "F32", shape: [2, 3], data: f32 },
    { name: "bf", dtype: "BF16", shape: [1, 2], data: bf16 },
    { name: "d2t", dtype: "I64", shape: [2], data: new BigInt64Array([5n, -7n]) },
    { name: "i", dtype: "I32", shape: [1], data: new Int32Array([42]) },
    { name: "u", dtype: "U8", shape: [0], data: new Uint8Array(0) },
  ];
  const path = `${dir}/x.safetensors`;
  await writeSafetensors(path, tensors, { format: "pt" });
  const store = await loadSafetensors(path);
  assert.deepEqual(store.names().sort(), ["b", "bf", "d2t", "h", "i", "u", "w"]);
  assert.deepEqual(store.f32("w", [2, 3]), f32);
  assert.deepEqual(store.f32("h"), new Float32Array([1, -2, 65504]));
  assert.deepEqual(store.f32("bf"), new Float32Array([1, 3.140625]));
  assert.deepEqual(store.f16Bits("h"), f16);
  assert.deepEqual(store.f16Bits("bf"), new Uint16Array([0x3c00, f32ToF16Bits(3.140625)]));
  assert.deepEqual([...store.f16Bits("w")], [...f32].map(f32ToF16Bits));
  const d2t = store.get("d2t");
  assert.deepEqual(d2t.shape, [2]);
  assert.deepEqual(new BigInt64Array(d2t.bytes.slice().buffer), new BigInt64Array([5n, -7n]));
  assert.deepEqual([...store.get("b").bytes], [1, 0, 1]);
  assert.equal(store.get("w").file, path);
  // Header padded to 8 and tensors ordered by element size: every tensor naturally aligned.
  const bytes = await Deno.readFile(path);
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal(n % 8, 0);
  for (const name of store.names()) {
    const e = store.get(name);
    assert.equal(
      (e.bytes.byteOffset - 8 - n) % ({ I64: 8, F32: 4, I32: 4 }[e.dtype as string] ?? 1),
      0,
      name,
    );
  }
  assert.deepEqual(await Array.fromAsync(Deno.readDir(dir), (e) => e.name), ["x.safetensors"]); // no tmp left
  await assertLoadError(() => store.get("nope"), "x.safetensors", `"nope"`, "not found");
  await assertLoadError(() => store.f32("d2t"), "x.safetensors", `"d2t"`, "I64");
  await assertLoadError(() => store.f32("w", [3, 2]), "x.safetensors", `"w"`, "[2, 3]", "[3, 2]");
  await assertLoadError(() => store.f16Bits("h", [4]), "x.safetensors", `"h"`, "[3]", "[4]");
  await assert.rejects(
    writeSafetensors(path, [{ name: "z", dtype: "F32", shape: [2], data: new Float32Array(3) }]),
    ShapeError,
  );
});

Deno.test("loads the bundled tiny checkpoint", async () => {
  const store = await loadSafetensors(TINY_DIR);
  assert.equal(store.names().length, 56);
  const emb = store.get("model.embed_tokens.weight");
  assert.equal(emb.dtype, "F32");
  assert.deepEqual(emb.shape, [8192, 128]);
  const norm = store.f32("model.norm.weight", [128]);
  assert.ok(norm.every(Number.isFinite));
  assert.ok(norm.some((v) => v !== 1)); // trained, not the init value
});

Deno.test("malformed safetensors files fail with the file and tensor named", async () => {
  const dir = await tempDir();
  const cases: [string, Uint8Array, string[]][] = [
    ["short", new Uint8Array([1, 2, 3]), ["too short", "3 bytes"]],
    [
      "past_end",
      (() => {
        const b = rawFile({ a: { dtype: "F32", shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4));
        new DataView(b.buffer).setBigUint64(0, BigInt(b.length), true);
        return b;
      })(),
      ["header length", "past the end"],
    ],
    [
      "huge",
      (() => {
        const b = new Uint8Array(16);
        new DataView(b.buffer).setBigUint64(0, 1n << 40n, true);
        return b;
      })(),
      ["absurdly large"],
    ],
    ["notjson", rawFile("{not json"), ["not valid JSON"]],
    ["array", rawFile("[1,2]"), ["must be a JSON object"]],
    ["dtype", rawFile({ t1: { dtype: "F64", shape: [1], data_offsets: [0, 8] } }, new Uint8Array(8)), [
      `"t1"`,
      "unknown dtype",
      "F64",
    ]],
    [
      "mismatch",
      rawFile({ t2: { dtype: "F32", shape: [2, 3], data_offsets: [0, 12] } }, new Uint8Array(24)),
      [
        `"t2"`,
        "needs 24 bytes",
        "span 12",
      ],
    ],
    ["beyond", rawFile({ t3: { dtype: "F32", shape: [4], data_offsets: [8, 24] } }, new Uint8Array(16)), [
      `"t3"`,
      "past the end of the data section",
    ]],
    ["negative", rawFile({ t4: { dtype: "U8", shape: [4], data_offsets: [-4, 0] } }, new Uint8Array(16)), [
      `"t4"`,
      "negative",
    ]],
    [
      "overlap",
      rawFile({
        t5: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
        t6: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
      }, new Uint8Array(12)),
      [`"t6"`, "overlap", `"t5"`],
    ],
    ["shape", rawFile({ t7: { dtype: "F32", shape: [-1], data_offsets: [0, 4] } }, new Uint8Array(4)), [
      `"t7"`,
      "shape",
    ]],
    ["offsets", rawFile({ t8: { dtype: "F32", shape: [1] } }, new Uint8Array(4)), [`"t8"`, "data_offsets"]],
  ];
  for (const [name, bytes, mentions] of cases) {
    const path = `${dir}/${name}.safetensors`;
    await Deno.writeFile(path, bytes);
    await assertLoadError(loadSafetensors(path), `${name}.safetensors`, ...mentions);
  }
  // A real checkpoint cut in the middle of its data.
  const tiny = await Deno.readFile(`${TINY_DIR}/model.safetensors`);
  await assertLoadError(
    () => parseSafetensors("cut.safetensors", tiny.subarray(0, 100_000)),
    "cut.safetensors",
    "past the end",
  );
  await assertLoadError(
    loadSafetensors(`${dir}/missing.safetensors`),
    "missing.safetensors",
    "does not exist",
  );
  await assertLoadError(loadSafetensors(dir), dir, "model.safetensors");
});

Deno.test("sharded checkpoints: round trip, missing shard, tensor missing from its shard", async () => {
  const dir = await tempDir();
  await writeSafetensors(`${dir}/model-00001-of-00002.safetensors`, [
    { name: "a", dtype: "F32", shape: [2], data: new Float32Array([1, 2]) },
  ]);
  await writeSafetensors(`${dir}/model-00002-of-00002.safetensors`, [
    { name: "b", dtype: "F16", shape: [1], data: new Uint16Array([0x4000]) },
  ]);
  const index = (map: Record<string, string>) =>
    Deno.writeTextFile(
      `${dir}/model.safetensors.index.json`,
      JSON.stringify({ metadata: {}, weight_map: map }),
    );
  await index({ a: "model-00001-of-00002.safetensors", b: "model-00002-of-00002.safetensors" });
  const store = await loadSafetensors(dir);
  assert.deepEqual(store.names(), ["a", "b"]);
  assert.deepEqual(store.f32("a"), new Float32Array([1, 2]));
  assert.deepEqual(store.f32("b"), new Float32Array([2]));
  assert.ok(store.get("b").file.endsWith("model-00002-of-00002.safetensors"));
  assert.ok(store.source.endsWith("model.safetensors.index.json"));

  await index({ a: "model-00001-of-00002.safetensors", c: "model-00002-of-00002.safetensors" });
  await assertLoadError(
    loadSafetensors(dir),
    "model-00002-of-00002.safetensors",
    `"c"`,
    "missing from this shard",
  );
  await index({ a: "model-00001-of-00002.safetensors", b: "model-00003-of-00002.safetensors" });
  await assertLoadError(
    loadSafetensors(dir),
    "model.safetensors.index.json",
    `"b"`,
    "model-00003-of-00002.safetensors",
  );
  await Deno.remove(`${dir}/model-00002-of-00002.safetensors`);
  await index({ a: "model-00001-of-00002.safetensors", b: "model-00002-of-00002.safetensors" });
  await assertLoadError(loadSafetensors(dir), "model.safetensors.index.json", `"b"`, "does not exist");
  await Deno.writeTextFile(`${dir}/model.safetensors.index.json`, JSON.stringify({ metadata: {} }));
  await assertLoadError(loadSafetensors(dir), "model.safetensors.index.json", `"weight_map"`);
  await Deno.writeTextFile(`${dir}/model.safetensors.index.json`, "{");
  await assertLoadError(loadSafetensors(dir), "model.safetensors.index.json", "not valid JSON");
});
