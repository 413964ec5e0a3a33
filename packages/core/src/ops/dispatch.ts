/**
 * Helpers shared by the ops: the 1-D → 2-D workgroup grid that every elementwise-style kernel uses
 * (index = (wg.y * nwg.x + wg.x) * WG + lid), so that more than 65535 workgroups can be addressed.
 * @module
 */

/** Workgroup grid covering `n` threads in workgroups of `wg` threads, split over x and y. */
export function grid1d(n: number, wg = 256, maxPerDim = 65535): [number, number] {
  const groups = Math.ceil(n / wg);
  if (groups <= maxPerDim) return [groups, 1];
  const y = Math.ceil(groups / maxPerDim);
  return [Math.ceil(groups / y), y];
}
