/**
 * The WGSL kernels, shared by training and decoding. One file per kernel family; each file's header
 * comment lists its entry points, bindings and shapes. Sources are imported as text so that the
 * package works from a checkout and from a registry alike, without file-system permissions.
 *
 * Kernels are specialised by `{{NAME}}` placeholders (see `specialize` in `@gto/core`) and
 * pipeline-overridable constants; the ops in `@gto/core` (packages/core/src/ops) own the choice.
 * WGSL shared by several kernels lives in a fragment that each user names on a line
 * `// #include NAME.wgsl`, resolved here once at import by {@link linkWgsl}, so every export is still
 * one string object (the pipeline cache keys on it) and a dispatch never builds WGSL text.
 * @module
 */
import attentionOnline from "./attention_online.wgsl" with { type: "text" };
import rmsRows from "./rms_rows.wgsl" with { type: "text" };

/** Fragments a kernel may `#include`, by file name. */
const FRAGMENTS: Readonly<Record<string, string>> = {
  "attention_online.wgsl": attentionOnline,
  "rms_rows.wgsl": rmsRows,
};

const INCLUDE = /^\/\/ #include (\S+)[ \t]*$/gm;

/**
 * Replace each line `// #include NAME` of a kernel source by the text of fragment NAME (WGSL has no
 * include). WGSL module-scope declarations are order-independent, so a fragment may use names that
 * the kernel declares after the line (its documented hooks), and the line's place decides only the
 * order of the workgroup arrays. One level: a fragment may not include another. Throws naming the
 * kernel and the fragment when NAME is unknown, included twice, or itself includes.
 */
export function linkWgsl(
  kernel: string,
  code: string,
  fragments: Readonly<Record<string, string>> = FRAGMENTS,
): string {
  const seen = new Set<string>();
  return code.replace(INCLUDE, (_, name: string) => {
    const text = Object.hasOwn(fragments, name) ? fragments[name] : undefined;
    if (text === undefined) throw new Error(`${kernel}: #include ${name}: no such WGSL fragment`);
    if (seen.has(name)) throw new Error(`${kernel}: #include ${name}: included twice`);
    if (new RegExp(INCLUDE.source, "m").test(text)) {
      throw new Error(`${kernel}: #include ${name}: a fragment may not include another`);
    }
    seen.add(name);
    return text.trimEnd();
  });
}

/** The online softmax shared by the workgroup attention kernels (linked into them; for reading). */
export const ATTENTION_ONLINE_WGSL: string = attentionOnline;
import elementwise from "./elementwise.wgsl" with { type: "text" };

/** Elementwise kernels: `add`. */
export const ELEMENTWISE_WGSL: string = elementwise;
import rope from "./rope.wgsl" with { type: "text" };
/** Fused QKV split + RoPE + KV-cache write (also plain in-place RoPE): `rope_qkv`. */
export const ROPE_WGSL: string = rope;
import attention from "./attention.wgsl" with { type: "text" };
/** Attention over the KV cache (GQA, causal or bitset mask, online softmax): `attention`. */
export const ATTENTION_WGSL: string = linkWgsl("attention.wgsl", attention);
import attentionSw from "./attention_sw.wgsl" with { type: "text" };
/** Attention for software adapters: one invocation per (query, kv head), no barriers: `attention_sw`. */
export const ATTENTION_SW_WGSL: string = attentionSw;
import linearIoVec4 from "./linear_io_vec4.wgsl" with { type: "text" };
import linearIoScalar from "./linear_io_scalar.wgsl" with { type: "text" };
import matmul from "./matmul.wgsl" with { type: "text" };
import matvec from "./matvec.wgsl" with { type: "text" };

/** Linear-kernel prelude for K % 4 == 0: bindings and vec4 loaders `ldx`/`ldw`/`put`. */
export const LINEAR_IO_VEC4_WGSL: string = linearIoVec4;
/** Linear-kernel prelude for any K: bindings and scalar-packing loaders `ldx`/`ldw`/`put`. */
export const LINEAR_IO_SCALAR_WGSL: string = linearIoScalar;
/** Tiled linear kernels: `matmul8`, `matmul4` (register-blocked), `naive` (baseline). */
export const MATMUL_WGSL: string = matmul;
/** Small-M linear kernel: `matvec` (M ≤ 8, weight streamed once). */
export const MATVEC_WGSL: string = matvec;
import norm from "./norm.wgsl" with { type: "text" };
import activation from "./activation.wgsl" with { type: "text" };
import embedding from "./embedding.wgsl" with { type: "text" };
import softmax from "./softmax.wgsl" with { type: "text" };
import select from "./select.wgsl" with { type: "text" };
import draftInput from "./draft_input.wgsl" with { type: "text" };

/** RMSNorm kernel `main` (placeholders `{{ENABLE}}`, `{{WT}}`: weight type f32 | f16). */
export const NORM_WGSL: string = linkWgsl("norm.wgsl", norm);
/** Activation kernels: `swiglu` over the fused gate/up projection. */
export const ACTIVATION_WGSL: string = activation;
/** Embedding gather `main` (placeholders `{{ENABLE}}`, `{{WT}}`: table type f32 | f16). */
export const EMBEDDING_WGSL: string = embedding;
/**
 * The EAGLE-3 draft layer's normalised inputs in one pass: embedding gather + input_layernorm and
 * (optionally gathered) hidden + hidden_norm, `main` / `main_sw` (see the file header).
 */
export const DRAFT_INPUT_WGSL: string = linkWgsl("draft_input.wgsl", draftInput);
/** Row softmax kernels: `softmax`, `log_softmax` (with temperature). */
export const SOFTMAX_WGSL: string = softmax;
/** Token selection kernels: `argmax`, `topk`, `sample` (temperature / top-k / top-p). */
export const SELECT_WGSL: string = select;
import linearBwd from "./linear_bwd.wgsl" with { type: "text" };
import normBwd from "./norm_bwd.wgsl" with { type: "text" };
import ropeBwd from "./rope_bwd.wgsl" with { type: "text" };
import attentionBwd from "./attention_bwd.wgsl" with { type: "text" };
import activationBwd from "./activation_bwd.wgsl" with { type: "text" };
import crossEntropyBwd from "./cross_entropy_bwd.wgsl" with { type: "text" };
import optim from "./optim.wgsl" with { type: "text" };

/** Training: strided tiled matmul `matmul_strided` for both linear gradients (dx = dy·w, dw = dyᵀ·x). */
export const LINEAR_BWD_WGSL: string = linearBwd;
/** Training: RMSNorm backward, `dx_main` (per row, writes rstd) and `dw_main` (per column). */
export const NORM_BWD_WGSL: string = normBwd;
/** Training: RoPE backward `rope_bwd` (inverse rotation, in place). */
export const ROPE_BWD_WGSL: string = ropeBwd;
/** Training: attention backward (GQA, causal or bitset mask): `dq_main`, `dkv_main`. */
export const ATTENTION_BWD_WGSL: string = attentionBwd;
/** Training: SwiGLU backward `swiglu_bwd` over the fused gate/up projection. */
export const ACTIVATION_BWD_WGSL: string = activationBwd;
/** Training: fused soft cross-entropy loss + gradient `soft_xent`, one workgroup per row. */
export const CROSS_ENTROPY_BWD_WGSL: string = crossEntropyBwd;
/** Training: `sumsq_partial` / `sumsq_final` (global gradient norm²) and `adamw` (with GPU clipping). */
export const OPTIM_WGSL: string = optim;
import accept from "./accept.wgsl" with { type: "text" };

/** Speculative-decoding bookkeeping: `commit_path`, `accept_sample`, `kv_compact`. */
export const ACCEPT_WGSL: string = accept;
import greedyPath from "./greedy_path.wgsl" with { type: "text" };
/** T=0 tree acceptance as a pure function of P verified trees: `greedy_path`. */
export const GREEDY_PATH_WGSL: string = greedyPath;
import trace from "./trace.wgsl" with { type: "text" };
/** Opt-in per-cycle trace of speculative decoding: `trace_record`. */
export const TRACE_WGSL: string = trace;
import tree from "./tree.wgsl" with { type: "text" };
/** EAGLE-3 draft-tree construction: `tree_level`, `tree_finalize`, `gather_rows`. */
export const TREE_WGSL: string = tree;
import ttt from "./ttt.wgsl" with { type: "text" };
/** Training: EAGLE-3 TTT bookkeeping `target_prep`, `fill_rows`, `step_prep`, `metrics`. */
export const TTT_WGSL: string = ttt;
import gto from "./gto.wgsl" with { type: "text" };
/** Training: GTO Phase II `row_lse`, `node_logprob`, `tree_reward`, `gto_coeff`. */
export const GTO_WGSL: string = gto;
import topkKernel from "./topk.wgsl" with { type: "text" };
/** Fused row log-softmax + top-k `topk_log_softmax` (placeholders `{{WG}}`, `{{CACHED}}`, `{{CACHE}}`). */
export const TOPK_WGSL: string = topkKernel;
import attentionSplit from "./attention_split.wgsl" with { type: "text" };
/** Split-K attention for few queries over a long cache: `attn_split` (partials), `attn_merge`. */
export const ATTENTION_SPLIT_WGSL: string = linkWgsl("attention_split.wgsl", attentionSplit);
import attentionRope from "./attention_rope.wgsl" with { type: "text" };
/** Attention fused with RoPE and the KV-cache write for ≤ 8 new tokens: `attention_rope`. */
export const ATTENTION_ROPE_WGSL: string = linkWgsl("attention_rope.wgsl", attentionRope);
