/**
 * GPU memory ownership. Two allocators, both created at load time so that no GPU object is created in
 * a hot path:
 *
 * - {@link BufferArena}: a bump allocator over a few large buffers ("chunks"). Weights live in one
 *   arena for the model's lifetime; activations of a step live in another that is `reset()` between
 *   uses. Freeing is all-at-once (`reset` / `destroy`), never per tensor.
 * - {@link BufferPool}: reusable whole buffers by (usage, power-of-two size class) for things whose
 *   lifetime does not follow a step (readback staging, scratch of variable size).
 *
 * Ownership rule: whoever created the arena or pool destroys it; tensors are views and own nothing.
 * @module
 */
import type { GpuDevice } from "./device.ts";
import { type DType, DTYPE_BYTES, numel, Tensor } from "./tensor.ts";
import { ShapeError } from "../errors.ts";

/** Usage flags for storage buffers that can also be written from the CPU and copied out. */
export const STORAGE_USAGE: number = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST |
  GPUBufferUsage.COPY_SRC;

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/** A bump allocator over large storage buffers. */
export class BufferArena {
  readonly #gpu: GpuDevice;
  readonly #label: string;
  readonly #chunkBytes: number;
  readonly #align: number;
  #chunks: GPUBuffer[] = [];
  #chunk = 0;
  #used = 0;

  /**
   * @param gpu the device
   * @param chunkBytes size of each chunk; clamped to the device's max storage binding size so every
   *   tensor can be bound whole
   * @param label debug label (appears in WebGPU errors)
   */
  constructor(gpu: GpuDevice, chunkBytes: number, label = "arena") {
    this.#gpu = gpu;
    this.#label = label;
    const max = Math.min(gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize);
    this.#chunkBytes = alignUp(Math.min(Math.max(chunkBytes, 256), Math.floor(max / 256) * 256), 256);
    this.#align = Math.max(256, gpu.limits.minStorageBufferOffsetAlignment);
  }

  /** Total bytes of GPU memory the arena holds. */
  get capacity(): number {
    return this.#chunks.reduce((s, b) => s + b.size, 0);
  }

  /** Bytes handed out since the last reset. */
  get used(): number {
    let s = 0;
    for (let i = 0; i < this.#chunk; i++) s += this.#chunks[i].size;
    return s + this.#used;
  }

  /** Allocate an uninitialised tensor. Contents are whatever the previous user left (zero when new). */
  alloc(shape: readonly number[], dtype: DType, name = "tensor"): Tensor {
    const bytes = alignUp(Math.max(4, numel(shape) * DTYPE_BYTES[dtype]), 4);
    if (bytes > this.#chunkBytes) {
      throw new ShapeError(
        `${name}: [${shape}] ${dtype} needs ${bytes} bytes, more than one binding allows (${this.#chunkBytes})`,
      );
    }
    for (;;) {
      if (this.#chunk === this.#chunks.length) {
        this.#chunks.push(this.#gpu.device.createBuffer({
          label: `${this.#label}#${this.#chunks.length}`,
          size: this.#chunkBytes,
          usage: STORAGE_USAGE,
        }));
      }
      const start = alignUp(this.#used, this.#align);
      if (start + bytes <= this.#chunks[this.#chunk].size) {
        this.#used = start + bytes;
        return new Tensor(this.#chunks[this.#chunk], start, shape, dtype, name);
      }
      this.#chunk++;
      this.#used = 0;
    }
  }

  /** Allocate and upload `data` (length must equal the shape's element count). */
  upload(data: ArrayBufferView, shape: readonly number[], dtype: DType, name = "tensor"): Tensor {
    const t = this.alloc(shape, dtype, name);
    if (data.byteLength !== t.byteLength) {
      throw new ShapeError(
        `${name}: ${data.byteLength} bytes given for [${shape}] ${dtype} (${t.byteLength})`,
      );
    }
    writeTensor(this.#gpu, t, data);
    return t;
  }

  /** Forget all allocations (the buffers are kept for reuse). Only call when no pending GPU work reads them. */
  reset(): void {
    this.#chunk = 0;
    this.#used = 0;
  }

  /** Destroy the buffers; tensors from this arena must not be used afterwards. */
  destroy(): void {
    for (const b of this.#chunks) b.destroy();
    this.#chunks = [];
    this.reset();
  }
}

/** Write CPU data into a tensor (queue-ordered; padded to 4 bytes as WebGPU requires). */
export function writeTensor(gpu: GpuDevice, t: Tensor, data: ArrayBufferView): void {
  const bytes = new Uint8Array(data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
  if (bytes.byteLength % 4 === 0) {
    gpu.device.queue.writeBuffer(t.buffer, t.offset, bytes);
  } else {
    const padded = new Uint8Array(alignUp(bytes.byteLength, 4));
    padded.set(bytes);
    gpu.device.queue.writeBuffer(t.buffer, t.offset, padded);
  }
}

/** Whole buffers reused by (usage, power-of-two size class). */
export class BufferPool {
  readonly #device: GPUDevice;
  readonly #free = new Map<string, GPUBuffer[]>();
  readonly #all: GPUBuffer[] = [];

  /** Create an empty pool on `gpu`. */
  constructor(gpu: GpuDevice) {
    this.#device = gpu.device;
  }

  /** A buffer of at least `bytes` with exactly `usage`; from the free list when one fits. */
  acquire(bytes: number, usage: number, label = "pooled"): GPUBuffer {
    const size = Math.max(256, 2 ** Math.ceil(Math.log2(Math.max(bytes, 1))));
    const key = `${usage}:${size}`;
    const list = this.#free.get(key);
    const hit = list?.pop();
    if (hit) return hit;
    const b = this.#device.createBuffer({ label, size, usage });
    this.#all.push(b);
    return b;
  }

  /** Return a buffer to the pool (it must come from {@link acquire} and be unmapped). */
  release(buffer: GPUBuffer): void {
    const key = `${buffer.usage}:${buffer.size}`;
    const list = this.#free.get(key) ?? [];
    list.push(buffer);
    this.#free.set(key, list);
  }

  /** Destroy every buffer the pool ever created. */
  destroy(): void {
    for (const b of this.#all) b.destroy();
    this.#all.length = 0;
    this.#free.clear();
  }
}
