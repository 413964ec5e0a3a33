/**
 * Device acquisition. We request the adapter's limits explicitly (wgpu otherwise hands out the
 * spec's small defaults, e.g. 128 MiB storage bindings) and the optional features the kernels can
 * use: `shader-f16` (f16 weight storage), `subgroups`, `timestamp-query` (benchmarks). Every feature
 * has a tested fallback, so a device without them still runs every kernel (docs/engine.md §2).
 * @module
 */
import { GpuUnavailableError } from "../errors.ts";
import { applySoftwareThreads } from "./software_threads.ts";

/** Optional features the engine knows how to use, as found on the device. */
export interface GpuFeatures {
  /** `shader-f16`: WGSL `f16` storage and arithmetic. */
  f16: boolean;
  /** `subgroups`: subgroup reductions (no kernel depends on it; there is always a workgroup path). */
  subgroups: boolean;
  /** `timestamp-query`: GPU timestamps for benchmarks. */
  timestamp: boolean;
}

/** Options for {@link requestGpu}. */
export interface GpuOptions {
  /** Disable shader-f16 even when the adapter has it (tests the f32 fallback). */
  disableF16?: boolean;
  /** Passed to `requestAdapter`. */
  powerPreference?: GPUPowerPreference;
  /**
   * Worker threads of a software adapter (Mesa's `LP_NUM_THREADS`; 0 = run each dispatch inline; see
   * `softwareThreadsFor`). Only the first device of a process can set it, and an `LP_NUM_THREADS`
   * already in the environment wins. Default: Mesa's (one worker per core).
   */
  softwareThreads?: number;
}

/** The acquired device with its adapter description, features and limits. */
export interface GpuDevice {
  /** The WebGPU device. */
  device: GPUDevice;
  /** Human-readable adapter description, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`. */
  adapterName: string;
  /** Whether this is a software/fallback adapter (lavapipe). */
  isFallback: boolean;
  /** Optional features enabled on the device. */
  features: GpuFeatures;
  /** The limits granted to the device (= the adapter's). */
  limits: GPUSupportedLimits;
  /**
   * `LP_NUM_THREADS` in effect for a software adapter (0 = inline), null for Mesa's default; always
   * null on a hardware adapter.
   */
  softwareThreads: number | null;
  /**
   * Uncaptured WebGPU errors (shader compile errors, validation errors) not yet reported. The
   * recorder throws them from its next awaited read, so a broken kernel fails loudly instead of
   * silently producing zeros.
   */
  errors: string[];
}

const LIMIT_NAMES = [
  "maxStorageBufferBindingSize",
  "maxBufferSize",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupSizeY",
  "maxComputeWorkgroupSizeZ",
  "maxComputeWorkgroupsPerDimension",
  "maxStorageBuffersPerShaderStage",
  "maxUniformBufferBindingSize",
  "maxDynamicUniformBuffersPerPipelineLayout",
  "maxBindingsPerBindGroup",
] as const;

const NO_ADAPTER_HELP = "no WebGPU adapter found. On a CPU-only Linux host install Mesa's software Vulkan " +
  "driver (`apt-get install -y mesa-vulkan-drivers`); on a GPU host check the Vulkan driver " +
  "(VK_DRIVER_FILES / vulkaninfo).";

/** Describe a device in one line (for benchmark and CLI headers). */
export function describeGpu(gpu: GpuDevice): string {
  const f = gpu.features;
  const feats = [f.f16 && "shader-f16", f.subgroups && "subgroups", f.timestamp && "timestamp-query"]
    .filter(Boolean).join(", ");
  const sw = !gpu.isFallback
    ? ""
    : gpu.softwareThreads === null
    ? " [software]"
    : gpu.softwareThreads === 0
    ? " [software, inline dispatch]"
    : ` [software, ${gpu.softwareThreads} threads]`;
  return `${gpu.adapterName}${sw} (features: ${feats || "none"})`;
}

/**
 * Acquire a WebGPU device with the adapter's full limits and the optional features it has.
 * Throws {@link GpuUnavailableError} when there is no adapter, naming the package to install.
 */
export async function requestGpu(options: GpuOptions = {}): Promise<GpuDevice> {
  if (typeof navigator === "undefined" || !("gpu" in navigator) || !navigator.gpu) {
    throw new GpuUnavailableError("this runtime has no navigator.gpu (Deno ≥ 2 exposes WebGPU by default)");
  }
  // Deno's Vulkan loader warns (harmlessly) without XDG_RUNTIME_DIR; give it one.
  try {
    if (!Deno.env.get("XDG_RUNTIME_DIR")) Deno.env.set("XDG_RUNTIME_DIR", "/tmp");
  } catch { /* no env permission: only a warning is lost */ }
  const threads = applySoftwareThreads(options.softwareThreads); // before the first adapter: Mesa reads it once
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: options.powerPreference });
  if (!adapter) throw new GpuUnavailableError(NO_ADAPTER_HELP);
  const want: GPUFeatureName[] = [];
  const has = (n: string) => adapter.features.has(n as GPUFeatureName);
  const f16 = has("shader-f16") && !options.disableF16;
  if (f16) want.push("shader-f16");
  if (has("subgroups")) want.push("subgroups" as GPUFeatureName);
  if (has("timestamp-query")) want.push("timestamp-query");
  const requiredLimits: Record<string, number> = {};
  for (const name of LIMIT_NAMES) requiredLimits[name] = adapter.limits[name];
  const device = await adapter.requestDevice({ requiredFeatures: want, requiredLimits });
  const errors: string[] = [];
  device.addEventListener("uncapturederror", (e) => {
    const msg = (e as GPUUncapturedErrorEvent).error.message;
    if (errors.length < 16) errors.push(msg);
  });
  const info = adapter.info;
  const isFallback = Boolean((info as unknown as { isFallbackAdapter?: boolean }).isFallbackAdapter);
  return {
    errors,
    device,
    adapterName: info.description || info.device || info.vendor || "unknown adapter",
    isFallback,
    features: { f16, subgroups: has("subgroups"), timestamp: has("timestamp-query") },
    limits: device.limits,
    softwareThreads: isFallback ? threads : null,
  };
}
