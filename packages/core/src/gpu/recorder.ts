/**
 * The recorder encodes a whole step — many dispatches — into one command encoder and one compute
 * pass, then submits once (a new encoder + submit costs ~90 µs in Deno, a dispatch in an open pass
 * ~1–2 µs; docs/engine.md §2). Per-dispatch parameters go into one uniform arena with dynamic offsets:
 * each dispatch gets its own 256-byte slot in a CPU staging copy that is uploaded with a single
 * `writeBuffer` right before the submit. `writeBuffer` is queue-ordered, so the next step may reuse
 * the slots although the previous submit has not finished.
 *
 * Readback is batched and asynchronous: `readback(t)` queues a copy that is appended after the pass
 * and returns a promise; all reads of one submit share one staging buffer and one `mapAsync`, and
 * staging buffers come from a pool, so several submits can be in flight (double buffering comes from
 * never waiting on a read before encoding the next step). Deno resolves a `mapAsync` ≥10 ms after
 * the GPU is done, so loops must read every K steps, never per token.
 *
 * Opt-in per-dispatch timing (`startProfile` / `profileScope` / `stopProfile`, profiler.ts) puts each
 * dispatch in a timestamped pass of its own while it is on; off, the dispatch path only checks a null.
 * @module
 */
import type { GpuDevice } from "./device.ts";
import { type Kernel, KernelCache } from "./kernel.ts";
import type { Tensor } from "./tensor.ts";
import { BufferPool } from "./arena.ts";
import { ShapeError } from "../errors.ts";
import { type DispatchProfile, DispatchProfiler } from "./profiler.ts";

interface PendingRead {
  tensor: Tensor;
  resolve: (data: ArrayBuffer) => void;
  reject: (e: unknown) => void;
}

/** Options for {@link Recorder}. */
export interface RecorderOptions {
  /** Bytes of the uniform arena: bounds the dispatches per submit (256 B each). Default 4 MiB. */
  paramArenaBytes?: number;
  /**
   * Throw on a dispatch that binds overlapping ranges of one buffer with at least one of them
   * writable (WebGPU/Dawn reject it, wgpu does not). Default: on when the environment variable
   * GTO_CHECK_ALIASING=1 (an audit switch; some ops still bind outputs in place).
   */
  checkAliasing?: boolean;
}

function envFlag(name: string): boolean {
  try {
    return Deno.env.get(name) === "1";
  } catch {
    return false; // no --allow-env
  }
}

/** Records dispatches into one encoder/pass per submit. Not reentrant; one per stream of work. */
export class Recorder {
  /** The device. */
  readonly gpu: GpuDevice;
  /** Pipeline and bind-group caches (shared by everything recorded here). */
  readonly kernels: KernelCache;
  readonly #pool: BufferPool;
  readonly #paramBuf: GPUBuffer;
  readonly #staging: ArrayBuffer;
  readonly #u32: Uint32Array;
  readonly #i32: Int32Array;
  readonly #f32: Float32Array;
  readonly #slot: number;
  #paramUsed = 0;
  #encoder: GPUCommandEncoder | null = null;
  #pass: GPUComputePassEncoder | null = null;
  #reads: PendingRead[] = [];
  #dispatches = 0;
  #totalDispatches = 0;
  #submits = 0;
  readonly #checkAliasing: boolean;
  #profiler: DispatchProfiler | null = null;

  /** Create a recorder with its own uniform arena and staging pool. */
  constructor(gpu: GpuDevice, kernels: KernelCache = new KernelCache(gpu), options: RecorderOptions = {}) {
    this.gpu = gpu;
    this.kernels = kernels;
    this.#checkAliasing = options.checkAliasing ?? envFlag("GTO_CHECK_ALIASING");
    this.#pool = new BufferPool(gpu);
    this.#slot = Math.max(256, gpu.limits.minUniformBufferOffsetAlignment);
    const bytes = Math.ceil((options.paramArenaBytes ?? 4 << 20) / this.#slot) * this.#slot;
    this.#paramBuf = gpu.device.createBuffer({
      label: "param-arena",
      size: bytes,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    this.#staging = new ArrayBuffer(bytes);
    this.#u32 = new Uint32Array(this.#staging);
    this.#i32 = new Int32Array(this.#staging);
    this.#f32 = new Float32Array(this.#staging);
  }

  /** Dispatches recorded since the last submit. */
  get pendingDispatches(): number {
    return this.#dispatches;
  }

  /** Counters for diagnostics and benchmarks: total dispatches and submits since creation. */
  get stats(): { dispatches: number; submits: number } {
    return { dispatches: this.#totalDispatches, submits: this.#submits };
  }

  #ensurePass(): GPUComputePassEncoder {
    if (!this.#pass) {
      this.#encoder ??= this.gpu.device.createCommandEncoder({ label: "step" });
      this.#pass = this.#encoder.beginComputePass({ label: "step" });
    }
    return this.#pass;
  }

  /** Profiling: a timestamped pass for one dispatch (ended right after it). */
  #profiledPass(prof: DispatchProfiler, name: string): GPUComputePassEncoder {
    if (prof.full) this.submit();
    this.#encoder ??= this.gpu.device.createCommandEncoder({ label: "step" });
    return this.#pass = prof.beginPass(this.#encoder, name);
  }

  /**
   * Start timing every dispatch (needs `timestamp-query`; throws naming the adapter otherwise). Submits
   * what is recorded first. Diagnostics only: each dispatch then runs in its own pass.
   */
  startProfile(): void {
    if (this.#profiler) throw new Error("startProfile: the recorder is already profiling");
    this.submit();
    this.#profiler = new DispatchProfiler(this.gpu);
  }

  /** Label the dispatches recorded from now on (a phase name; "" for none). Ignored when not profiling. */
  profileScope(scope: string): void {
    if (this.#profiler) this.#profiler.scope = scope;
  }

  /** Whether {@link startProfile} is in effect. */
  get profiling(): boolean {
    return this.#profiler !== null;
  }

  /**
   * Submit, wait for the GPU, stop profiling and return the per-kernel times since
   * {@link startProfile}, most expensive first.
   */
  async stopProfile(): Promise<DispatchProfile> {
    const prof = this.#profiler;
    if (!prof) throw new Error("stopProfile: the recorder is not profiling");
    this.submit();
    this.#profiler = null;
    try {
      const out = await prof.collect();
      this.checkErrors();
      return out;
    } finally {
      prof.destroy();
    }
  }

  /**
   * Record one dispatch of `kernel` over `tensors` (binding order) with `params` (one number per
   * character of `kernel.spec.params`) and `groups` workgroups.
   */
  dispatch(
    kernel: Kernel,
    tensors: readonly (Tensor | null)[],
    params: readonly number[],
    groups: readonly number[],
  ): void {
    const spec = kernel.spec;
    if (tensors.length !== spec.storage.length) {
      throw new ShapeError(
        `${spec.name}: ${tensors.length} tensors bound, kernel declares ${spec.storage.length}`,
      );
    }
    for (let i = 0; i < tensors.length; i++) {
      if ((tensors[i] === null) !== (spec.storage[i] === "unused")) {
        throw new ShapeError(
          `${spec.name}: binding ${i} is ${spec.storage[i]} but ${
            tensors[i] ? "a tensor" : "null"
          } was passed`,
        );
      }
    }
    const types = spec.params ?? "";
    if (params.length !== types.length) {
      throw new ShapeError(`${spec.name}: ${params.length} params given, kernel declares ${types.length}`);
    }
    const maxGroups = this.gpu.limits.maxComputeWorkgroupsPerDimension;
    const [gx, gy = 1, gz = 1] = groups;
    if (gx > maxGroups || gy > maxGroups || gz > maxGroups) {
      throw new ShapeError(
        `${spec.name}: workgroup count [${gx},${gy},${gz}] exceeds ${maxGroups} per dimension`,
      );
    }
    if (gx === 0 || gy === 0 || gz === 0) return;
    // WebGPU forbids one buffer bound read-only and read-write in the same dispatch (wgpu reports a
    // usage conflict and drops the dispatch). Arenas pack many tensors into one buffer, so kernels
    // bind activations read_write; a "read" binding is only for buffers nothing in the dispatch writes.
    for (let i = 0; i < tensors.length; i++) {
      if (spec.storage[i] !== "read") continue;
      for (let j = 0; j < tensors.length; j++) {
        if (spec.storage[j] === "rw" && tensors[j]!.buffer === tensors[i]!.buffer) {
          throw new ShapeError(
            `${spec.name}: read-only ${tensors[i]!.name} shares a GPU buffer with written ${
              tensors[j]!.name
            }`,
          );
        }
      }
    }
    if (this.#checkAliasing) {
      for (let i = 0; i < tensors.length; i++) {
        const a = tensors[i];
        if (!a) continue;
        for (let j = i + 1; j < tensors.length; j++) {
          const b = tensors[j];
          if (!b || a.buffer !== b.buffer || (spec.storage[i] !== "rw" && spec.storage[j] !== "rw")) continue;
          if (a.offset < b.offset + b.bindingSize && b.offset < a.offset + a.bindingSize) {
            throw new ShapeError(
              `${spec.name}: bindings ${i} (${a.name}) and ${j} (${b.name}) overlap in one buffer and one is writable`,
            );
          }
        }
      }
    }
    let offset = 0;
    if (kernel.paramBytes > 0) {
      if (this.#paramUsed + this.#slot > this.#staging.byteLength) this.submit(); // arena full: flush
      offset = this.#paramUsed;
      this.#paramUsed += this.#slot;
      const w = offset >> 2;
      for (let i = 0; i < types.length; i++) {
        const c = types.charCodeAt(i);
        if (c === 102 /* f */) this.#f32[w + i] = params[i];
        else if (c === 105 /* i */) this.#i32[w + i] = params[i];
        else this.#u32[w + i] = params[i];
      }
    }
    const prof = this.#profiler;
    const pass = prof ? this.#profiledPass(prof, spec.name) : this.#ensurePass();
    pass.setPipeline(kernel.pipeline);
    const bg = this.kernels.bindGroup(kernel, tensors, kernel.paramBytes > 0 ? this.#paramBuf : null);
    if (kernel.paramBytes > 0) pass.setBindGroup(0, bg, [offset]);
    else pass.setBindGroup(0, bg);
    pass.dispatchWorkgroups(gx, gy, gz);
    if (prof) {
      pass.end();
      this.#pass = null;
    }
    this.#dispatches++;
    this.#totalDispatches++;
  }

  /** Queue a copy of `t` to the CPU, made after everything recorded before the next submit. */
  readback(t: Tensor): Promise<ArrayBuffer> {
    return new Promise((resolve, reject) => this.#reads.push({ tensor: t, resolve, reject }));
  }

  /** End the pass, append queued readback copies, upload params, submit. Returns when submitted. */
  submit(): void {
    if (!this.#encoder && this.#reads.length === 0) return;
    const device = this.gpu.device;
    const encoder = this.#encoder ?? device.createCommandEncoder({ label: "readback" });
    this.#pass?.end();
    const afterSubmit = this.#profiler?.resolveInto(encoder) ?? null;
    const reads = this.#reads;
    this.#reads = [];
    let staging: GPUBuffer | null = null;
    const offsets: number[] = [];
    if (reads.length > 0) {
      let total = 0;
      for (const r of reads) {
        offsets.push(total);
        total += Math.ceil(r.tensor.byteLength / 4) * 4;
      }
      staging = this.#pool.acquire(total, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, "readback");
      reads.forEach((r, i) => {
        encoder.copyBufferToBuffer(
          r.tensor.buffer,
          r.tensor.offset,
          staging!,
          offsets[i],
          r.tensor.bindingSize,
        );
      });
    }
    if (this.#paramUsed > 0) {
      device.queue.writeBuffer(this.#paramBuf, 0, this.#staging, 0, this.#paramUsed);
    }
    device.queue.submit([encoder.finish()]);
    afterSubmit?.();
    this.#submits++;
    this.#encoder = null;
    this.#pass = null;
    this.#paramUsed = 0;
    this.#dispatches = 0;
    if (staging) {
      const buf = staging;
      buf.mapAsync(GPUMapMode.READ).then(() => {
        const mapped = buf.getMappedRange();
        reads.forEach((r, i) => r.resolve(mapped.slice(offsets[i], offsets[i] + r.tensor.byteLength)));
        buf.unmap();
        this.#pool.release(buf);
      }, (e) => reads.forEach((r) => r.reject(e)));
    }
  }

  /** Throw (once) the WebGPU errors reported since the last check, if any. */
  checkErrors(): void {
    const errs = this.gpu.errors;
    if (errs.length > 0) {
      const msg = errs.splice(0).map((e) => e.trim()).join("\n");
      throw new Error(`WebGPU reported errors:\n${msg}`);
    }
  }

  /** Submit what is recorded and wait until the GPU has finished it (tests and setup only). */
  async finish(): Promise<void> {
    this.submit();
    await this.gpu.device.queue.onSubmittedWorkDone();
    this.checkErrors();
  }

  /**
   * Deno's completion latency in ms: the fastest of `tries` empty round trips through {@link finish}.
   * Deno resolves completion a fixed ~11 ms after the GPU is done (docs/engine.md §2), so timings of
   * submitted work subtract this to get GPU time; the minimum, because load only ever adds time.
   * Submits whatever is recorded (call it with nothing pending).
   */
  async completionLatencyMs(tries = 3): Promise<number> {
    let latency = Infinity;
    for (let i = 0; i < tries; i++) {
      const t = performance.now();
      await this.finish();
      latency = Math.min(latency, performance.now() - t);
    }
    return latency;
  }

  /** Submit and read `t` back as its typed array (tests and setup; loops use {@link readback}). */
  async read(t: Tensor): Promise<Float32Array | Uint32Array | Int32Array | Uint16Array> {
    const p = this.readback(t);
    this.submit();
    const buf = await p;
    this.checkErrors();
    switch (t.dtype) {
      case "f32":
        return new Float32Array(buf);
      case "u32":
        return new Uint32Array(buf);
      case "i32":
        return new Int32Array(buf);
      case "f16":
        return new Uint16Array(buf);
    }
  }

  /** Read an f32 tensor (throws naming the tensor if it is not f32). */
  async readF32(t: Tensor): Promise<Float32Array> {
    if (t.dtype !== "f32") throw new ShapeError(`${t.name}: readF32 on a ${t.dtype} tensor`);
    return await this.read(t) as Float32Array;
  }

  /** Release the uniform arena and staging buffers. */
  destroy(): void {
    this.#profiler?.destroy();
    this.#profiler = null;
    this.#paramBuf.destroy();
    this.#pool.destroy();
  }
}
