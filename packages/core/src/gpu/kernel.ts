/**
 * Compiled kernels and the caches that make dispatch cheap. Creating a pipeline costs milliseconds and
 * `createBindGroup` ~5 µs (docs/engine.md §2), so both are created once and looked up by key: pipelines by
 * (entry point, WGSL text, override constants), bind groups by (kernel layout, buffer spans).
 *
 * Binding convention for every kernel in `kernels/`: `@group(0) @binding(i)` for i < storage.length
 * are the storage buffers in the order the op passes tensors; if the kernel has parameters, binding
 * `storage.length` is `var<uniform> p: Params` bound with a dynamic offset into the recorder's uniform
 * arena. An entry point of a multi-entry module that does not use slot i declares it `"unused"` and the
 * op passes `null` there: the slot is left out of the layout (binding a placeholder instead would
 * alias another binding, and WebGPU/Dawn reject aliased writable storage ranges).
 *
 * Read-only vs read-write: WebGPU tracks usage per *buffer*, and a buffer bound read-only and
 * read-write in one dispatch is a usage conflict (wgpu drops the dispatch with a validation error).
 * Arenas pack many tensors into one buffer, so activations are declared `read_write` even when only
 * read; `read` is used only for bindings that can never share a buffer with an output (weights in
 * the weight arena). The recorder checks this on every dispatch.
 * @module
 */
import type { GpuDevice } from "./device.ts";
import type { Tensor } from "./tensor.ts";

/** How a kernel declares its interface. */
export interface KernelSpec {
  /** Name used in labels and error messages. */
  name: string;
  /** Complete WGSL source (already specialised, see {@link specialize}). */
  code: string;
  /** Entry point; defaults to `main`. */
  entryPoint?: string;
  /** Storage bindings in binding order: read-only, read-write, or a slot this entry point leaves unused. */
  storage: readonly ("read" | "rw" | "unused")[];
  /** One character per 4-byte word of the uniform `Params` struct: `u` u32, `i` i32, `f` f32. */
  params?: string;
  /** Pipeline-overridable constants. */
  constants?: Record<string, number>;
}

/** A compiled kernel: pipeline plus its explicit layout. */
export interface Kernel {
  /** The spec it was compiled from. */
  readonly spec: KernelSpec;
  /** The compute pipeline. */
  readonly pipeline: GPUComputePipeline;
  /** The bind group layout (group 0). */
  readonly layout: GPUBindGroupLayout;
  /** Bytes of the Params struct (0 when none), rounded to 16. */
  readonly paramBytes: number;
  /** Unique id, part of bind-group cache keys. */
  readonly id: number;
}

/**
 * Replace `{{NAME}}` placeholders in WGSL source. Throws when a placeholder has no value, so a
 * kernel can never be compiled half-specialised.
 */
export function specialize(code: string, defs: Record<string, string | number>): string {
  const out = code.replace(/\{\{(\w+)\}\}/g, (_, k: string) => {
    if (!(k in defs)) throw new Error(`WGSL placeholder {{${k}}} has no value`);
    return String(defs[k]);
  });
  return out;
}

let nextId = 1;
const bufferIds = new WeakMap<GPUBuffer, number>();

/** A stable small integer per buffer (for cache keys). */
export function bufferId(b: GPUBuffer): number {
  let id = bufferIds.get(b);
  if (id === undefined) {
    id = nextId++;
    bufferIds.set(b, id);
  }
  return id;
}

/** Pipeline and bind-group caches for one device. */
export class KernelCache {
  readonly #gpu: GpuDevice;
  readonly #kernels = new Map<string, Map<string, Kernel>>();
  #count = 0;
  readonly #bindGroups = new Map<string, GPUBindGroup>();
  readonly #maxBindGroups: number;

  /** Create empty caches; `maxBindGroups` bounds the bind-group cache (cleared when exceeded). */
  constructor(gpu: GpuDevice, maxBindGroups = 8192) {
    this.#gpu = gpu;
    this.#maxBindGroups = maxBindGroups;
  }

  /** Number of compiled pipelines (for tests and diagnostics). */
  get pipelineCount(): number {
    return this.#count;
  }

  /** Number of cached bind groups. */
  get bindGroupCount(): number {
    return this.#bindGroups.size;
  }

  /** Compile `spec` once; later calls with the same spec return the cached kernel. */
  get(spec: KernelSpec): Kernel {
    // Two levels so a lookup never concatenates the WGSL text: the same source string object (a module
    // constant) keeps its hash cached by V8, so the outer lookup is O(1) after the first call.
    let byCode = this.#kernels.get(spec.code);
    if (!byCode) this.#kernels.set(spec.code, byCode = new Map());
    const key = `${spec.entryPoint ?? "main"}\u0000${JSON.stringify(spec.constants ?? {})}\u0000${
      spec.storage.join(",")
    }\u0000${spec.params ?? ""}`;
    const hit = byCode.get(key);
    if (hit) return hit;
    const device = this.#gpu.device;
    const paramBytes = spec.params ? Math.ceil((spec.params.length * 4) / 16) * 16 : 0;
    const entries: GPUBindGroupLayoutEntry[] = [];
    spec.storage.forEach((kind, i) => {
      if (kind === "unused") return;
      entries.push({
        binding: i,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: kind === "read" ? "read-only-storage" : "storage" },
      });
    });
    if (paramBytes > 0) {
      entries.push({
        binding: spec.storage.length,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: "uniform", hasDynamicOffset: true, minBindingSize: paramBytes },
      });
    }
    const layout = device.createBindGroupLayout({ label: spec.name, entries });
    const module = device.createShaderModule({ label: spec.name, code: spec.code });
    const pipeline = device.createComputePipeline({
      label: spec.name,
      layout: device.createPipelineLayout({ label: spec.name, bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: spec.entryPoint ?? "main", constants: spec.constants },
    });
    const kernel: Kernel = { spec, pipeline, layout, paramBytes, id: nextId++ };
    byCode.set(key, kernel);
    this.#count++;
    return kernel;
  }

  /**
   * The bind group for `kernel` over `tensors` (and the uniform arena `params`), cached by span;
   * `null` marks a slot the kernel declares unused.
   */
  bindGroup(kernel: Kernel, tensors: readonly (Tensor | null)[], params: GPUBuffer | null): GPUBindGroup {
    let key = `${kernel.id}`;
    for (const t of tensors) key += t ? `|${bufferId(t.buffer)}:${t.offset}:${t.bindingSize}` : "|-";
    if (params) key += `|u${bufferId(params)}`;
    const hit = this.#bindGroups.get(key);
    if (hit) return hit;
    const entries: GPUBindGroupEntry[] = [];
    tensors.forEach((t, i) => {
      if (t) {
        entries.push({ binding: i, resource: { buffer: t.buffer, offset: t.offset, size: t.bindingSize } });
      }
    });
    if (params) {
      entries.push({
        binding: tensors.length,
        resource: { buffer: params, offset: 0, size: kernel.paramBytes },
      });
    }
    if (this.#bindGroups.size >= this.#maxBindGroups) this.#bindGroups.clear();
    const bg = this.#gpu.device.createBindGroup({ label: kernel.spec.name, layout: kernel.layout, entries });
    this.#bindGroups.set(key, bg);
    return bg;
  }
}
