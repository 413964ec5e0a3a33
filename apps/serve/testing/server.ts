/**
 * A real `deno task serve` for end-to-end tests and the load benchmark: `deno run -A apps/serve/main.ts
 * --port 0 ...` as a subprocess, ready when its ready line (with the chosen port) appears on stdout.
 * @module
 */

const MAIN = decodeURIComponent(new URL("../main.ts", import.meta.url).pathname);

/** A running server. */
export interface ServerProcess {
  /** Base URL, e.g. http://127.0.0.1:41234. */
  url: string;
  /** The server's process id (for its RSS). */
  pid: number;
  /** The ready line. */
  readyLine: string;
  /** Everything written to stderr so far. */
  stderr(): string;
  /** SIGTERM, then wait for exit; resolves to the exit code. */
  stop(): Promise<number>;
}

/** Start the server with `args` (127.0.0.1 and port 0 unless given); rejects if it exits or stalls. */
export async function startServer(args: string[], timeoutMs = 120_000): Promise<ServerProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "--port", "0", ...args],
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
    env: { NO_COLOR: "1" },
  }).spawn();
  let err = "";
  const dec = new TextDecoder();
  (async () => {
    for await (const chunk of child.stderr) err += dec.decode(chunk, { stream: true });
  })();
  const reader = child.stdout.getReader();
  let out = "";
  const deadline = Date.now() + timeoutMs;
  while (!/ready on (http:\/\/\S+)/.test(out)) {
    const timer = new Promise<"timeout">((r) =>
      setTimeout(() => r("timeout"), Math.max(1, deadline - Date.now()))
    );
    const next = await Promise.race([reader.read(), timer]);
    if (next === "timeout" || next.done) {
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
      await child.status;
      throw new Error(
        `server did not become ready (${next === "timeout" ? "timeout" : "exited"}): ${out}${err}`,
      );
    }
    out += dec.decode(next.value, { stream: true });
  }
  // Keep draining stdout so the child never blocks on a full pipe.
  (async () => {
    try {
      while (!(await reader.read()).done) { /* drain */ }
    } catch { /* closed */ }
  })();
  const url = /ready on (http:\/\/\S+)/.exec(out)![1];
  return {
    url,
    pid: child.pid,
    readyLine: out.trim().split("\n").find((l) => l.includes("ready on"))!,
    stderr: () => err,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch { /* already gone */ }
      return (await child.status).code;
    },
  };
}

/** Resident set size of a process in bytes (Linux /proc), or NaN elsewhere. */
export function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}
