/**
 * The one seeded PRNG of the project (mulberry32): deterministic uniforms in [0, 1) from a 32-bit seed,
 * shared by draft initialisation (`io/eagle3.ts`), the trainer's data order, GTO's group placement and
 * the tests, so that "the same seed" means the same stream everywhere. Not cryptographic; 2³² period
 * per seed is plenty for shuffles and initialisation.
 * @module
 */

/** A seeded PRNG (mulberry32) returning uniforms in [0, 1) (multiples of 2⁻³²). */
export function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
