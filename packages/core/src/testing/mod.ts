/**
 * Test utilities: one shared GPU device per test process, seeded random data and all-close checks.
 * Tests fail loudly (never skip) when no adapter exists: CI has the software adapter.
 * @module
 */
import { type GpuDevice, requestGpu } from "../gpu/device.ts";
import { Recorder } from "../gpu/recorder.ts";
import { KernelCache } from "../gpu/kernel.ts";
import { mulberry32 } from "../util/random.ts";

let shared: Promise<{ gpu: GpuDevice; rec: Recorder }> | null = null;

/** The process-wide test device and recorder (created on first use). */
export function testGpu(): Promise<{ gpu: GpuDevice; rec: Recorder }> {
  shared ??= requestGpu().then((gpu) => ({ gpu, rec: new Recorder(gpu, new KernelCache(gpu)) }));
  return shared;
}

/** A seeded PRNG (mulberry32) returning uniforms in [0, 1). */
export function rng(seed: number): () => number {
  return mulberry32(seed);
}

/** `n` normal samples × `scale` (Box–Muller) from `seed`. */
export function randn(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(r(), 1e-12);
    out[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r()) * scale;
  }
  return out;
}

/** Throw unless |a−e| ≤ atol + rtol·|e| everywhere; the message names the first bad index and the worst error. */
export function assertAllClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  opts: { rtol?: number; atol?: number; name?: string } = {},
): void {
  const { rtol = 1e-4, atol = 1e-5, name = "tensor" } = opts;
  if (actual.length !== expected.length) {
    throw new Error(`${name}: length ${actual.length} != expected ${expected.length}`);
  }
  let worst = 0, worstAt = -1, bad = -1;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i], e = expected[i];
    const err = Math.abs(a - e);
    if (!(err <= atol + rtol * Math.abs(e))) {
      if (bad < 0) bad = i;
      if (!(err <= worst)) {
        worst = err;
        worstAt = i;
      }
    }
  }
  if (bad >= 0) {
    throw new Error(
      `${name}: not all-close (rtol ${rtol}, atol ${atol}); first bad index ${bad}: ${actual[bad]} vs ${
        expected[bad]
      }; worst |err| ${worst} at ${worstAt}`,
    );
  }
}
