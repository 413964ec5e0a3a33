/**
 * Error types shared by the whole package. Every error names the file, tensor or field at fault so a
 * user can act on one line of output (the CLIs print `error: <message>` and exit non-zero).
 * @module
 */

/** A model directory, weight file, config or tokenizer that cannot be used as given. */
export class ModelLoadError extends Error {
  /** The file at fault (absolute or as given by the user). */
  readonly file: string;
  /** Create an error for `file`; the message should say what is wrong and, where known, which tensor/field. */
  constructor(file: string, message: string, options?: ErrorOptions) {
    super(`${file}: ${message}`, options);
    this.name = "ModelLoadError";
    this.file = file;
  }
}

/** No usable WebGPU adapter, or a device that lacks a limit/feature the engine needs. */
export class GpuUnavailableError extends Error {
  /** Create the error with a message that says how to fix it. */
  constructor(message: string) {
    super(message);
    this.name = "GpuUnavailableError";
  }
}

/** A caller passed shapes, dtypes or options that do not fit together. */
export class ShapeError extends Error {
  /** Create the error; the message should name the tensor and both shapes. */
  constructor(message: string) {
    super(message);
    this.name = "ShapeError";
  }
}
