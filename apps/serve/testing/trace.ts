/**
 * Whether the engine delivers `onCycle` traces yet. The per-cycle trace comes from the speculative
 * decoder (core's trace ring); until it lands, the tests that need real trees are reported as
 * ignored rather than passing. Flip to true when `Engine` calls `onCycle`.
 * @module
 */

/** True once the real engine calls `onCycle` for every verification cycle. */
export const TRACE_DELIVERED = true;
