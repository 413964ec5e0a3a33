/**
 * The WGSL kernels, shared by training and decoding. One file per kernel family; each file's header
 * comment lists its entry points, bindings and shapes. Sources are imported as text so that the
 * package works from a checkout and from a registry alike, without file-system permissions.
 *
 * Kernels are specialised by `{{NAME}}` placeholders (see `specialize` in `@gto/core`) and
 * pipeline-overridable constants; the ops in `@gto/core` (packages/core/src/ops) own the choice.
 * @module
 */
import elementwise from "./elementwise.wgsl" with { type: "text" };

/** Elementwise kernels: `add`. */
export const ELEMENTWISE_WGSL: string = elementwise;
