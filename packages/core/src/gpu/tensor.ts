/**
 * A tensor is a typed, shaped view of a span of a GPU buffer. Tensors never own their buffer: the
 * arena or pool that allocated the span does (see arena.ts for the ownership rules).
 * @module
 */
import { ShapeError } from "../errors.ts";

/** Element types a tensor can hold on the GPU. */
export type DType = "f32" | "f16" | "u32" | "i32";

/** Bytes per element of each {@link DType}. */
export const DTYPE_BYTES: Readonly<Record<DType, number>> = { f32: 4, f16: 2, u32: 4, i32: 4 };

/** Number of elements of a shape. */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** A typed, shaped view of `byteLength` bytes at `offset` in `buffer`. */
export class Tensor {
  /** The buffer holding the data (owned by an arena or pool, never by the tensor). */
  readonly buffer: GPUBuffer;
  /** Byte offset of element 0 (a multiple of the device's storage offset alignment). */
  readonly offset: number;
  /** Shape, outermost first. */
  readonly shape: readonly number[];
  /** Element type. */
  readonly dtype: DType;
  /** A label used in error messages. */
  readonly name: string;

  /** Wrap a span of `buffer`; prefer allocating through an arena. */
  constructor(buffer: GPUBuffer, offset: number, shape: readonly number[], dtype: DType, name = "tensor") {
    this.buffer = buffer;
    this.offset = offset;
    this.shape = [...shape];
    this.dtype = dtype;
    this.name = name;
    if (offset + this.byteLength > buffer.size) {
      throw new ShapeError(`${name}: span ${offset}+${this.byteLength} exceeds buffer size ${buffer.size}`);
    }
  }

  /** Number of elements. */
  get size(): number {
    return numel(this.shape);
  }

  /** Bytes of data (not rounded). */
  get byteLength(): number {
    return this.size * DTYPE_BYTES[this.dtype];
  }

  /** Bytes to bind: storage bindings must be a multiple of 4 bytes (odd f16 counts round up). */
  get bindingSize(): number {
    return Math.max(4, Math.ceil(this.byteLength / 4) * 4);
  }

  /** A view of the same bytes with another shape (same element count). */
  reshape(shape: readonly number[], name: string = this.name): Tensor {
    if (numel(shape) !== this.size) {
      throw new ShapeError(`${this.name}: cannot reshape [${this.shape}] to [${shape}]`);
    }
    return new Tensor(this.buffer, this.offset, shape, this.dtype, name);
  }

  /** A view of the first `n` entries along dim 0 (e.g. the first T rows of a (maxT, H) workspace). */
  rows(n: number, name: string = this.name): Tensor {
    if (!Number.isInteger(n) || n < 0 || n > this.shape[0]) {
      throw new ShapeError(`${this.name}: cannot take ${n} rows of [${this.shape}]`);
    }
    return new Tensor(this.buffer, this.offset, [n, ...this.shape.slice(1)], this.dtype, name);
  }

  /** Throw a {@link ShapeError} naming this tensor unless its shape equals `shape` (-1 = any). */
  expectShape(shape: readonly number[], dtype?: DType | DType[]): this {
    const ok = shape.length === this.shape.length && shape.every((d, i) => d < 0 || d === this.shape[i]);
    if (!ok) throw new ShapeError(`${this.name}: expected shape [${shape}], got [${this.shape}]`);
    if (dtype !== undefined) {
      const allowed = Array.isArray(dtype) ? dtype : [dtype];
      if (!allowed.includes(this.dtype)) {
        throw new ShapeError(`${this.name}: expected dtype ${allowed.join("|")}, got ${this.dtype}`);
      }
    }
    return this;
  }
}
