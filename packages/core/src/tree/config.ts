/**
 * The draft-tree shape: options ({@link TreeConfig}), their validation and derived sizes
 * ({@link resolveTreeConfig}), the GPU construction's limits, and the candidate-array layout shared by
 * the GPU readback and the CPU reference. Production code (tree ops, decoders, apps) takes its tree
 * configuration from here, never from the reference file.
 * @module
 */
import { ShapeError } from "../errors.ts";

/** Tree shape options (EAGLE-3 defaults). */
export interface TreeConfig {
  /** Nodes verified per cycle, root included (default 60). */
  totalTokens?: number;
  /** Draft expansions per cycle (default 7); the tree can be depth + 1 levels deep below the root. */
  depth?: number;
  /** Children kept per expanded node and frontier width (default 10). */
  topK?: number;
}

/** A validated {@link TreeConfig} with the derived sizes. */
export interface ResolvedTreeConfig {
  /** N: nodes of the final tree, root included. */
  totalTokens: number;
  /** D: draft expansions. */
  depth: number;
  /** k: children per node and frontier width. */
  topK: number;
  /** C = k + D·k²: candidates appended over all levels. */
  candidates: number;
  /** Longest possible root→leaf path in nodes, root included: min(D + 1, N − 1) + 1. */
  pathWidth: number;
}

/** Largest k the GPU construction supports (the per-row `topk` op's limit). */
export const TREE_MAX_TOPK = 64;
/** Largest N the GPU construction supports (one 256-thread workgroup, one thread per node). */
export const TREE_MAX_TOKENS = 256;

/**
 * Validate tree options and derive sizes. Requires integers topK ∈ [1, 64], depth ≥ 0, totalTokens ∈
 * [2, 256], totalTokens − 1 ≤ topK + depth·topK², and topK ≤ draftVocab when given.
 * Throws {@link ShapeError} naming the offending option.
 */
export function resolveTreeConfig(cfg: TreeConfig = {}, draftVocab?: number): ResolvedTreeConfig {
  const totalTokens = cfg.totalTokens ?? 60;
  const depth = cfg.depth ?? 7;
  const topK = cfg.topK ?? 10;
  if (!Number.isInteger(topK) || topK < 1 || topK > TREE_MAX_TOPK) {
    throw new ShapeError(`tree: topK must be an integer in [1, ${TREE_MAX_TOPK}], got ${topK}`);
  }
  if (!Number.isInteger(depth) || depth < 0) {
    throw new ShapeError(`tree: depth must be an integer ≥ 0, got ${depth}`);
  }
  if (!Number.isInteger(totalTokens) || totalTokens < 2 || totalTokens > TREE_MAX_TOKENS) {
    throw new ShapeError(
      `tree: totalTokens must be an integer in [2, ${TREE_MAX_TOKENS}], got ${totalTokens}`,
    );
  }
  const candidates = topK + depth * topK * topK;
  if (totalTokens - 1 > candidates) {
    throw new ShapeError(
      `tree: totalTokens − 1 = ${totalTokens - 1} exceeds the ${candidates} candidates ` +
        `(topK + depth·topK² with topK ${topK}, depth ${depth})`,
    );
  }
  if (draftVocab !== undefined && (!Number.isInteger(draftVocab) || draftVocab < topK)) {
    throw new ShapeError(`tree: draft vocabulary ${draftVocab} must be an integer ≥ topK ${topK}`);
  }
  return { totalTokens, depth, topK, candidates, pathWidth: Math.min(depth + 1, totalTokens - 1) + 1 };
}

/** The flat candidate arrays of a growth (C = k + depth·k² entries, level by level). */
export interface TreeCandidates {
  /** Cumulative draft log-prob score, f32, (C). */
  scores: Float32Array;
  /** Target token id, (C). */
  tokens: Int32Array;
  /** Candidate index of the parent, −1 for the root's children, (C). */
  parents: Int32Array;
}
