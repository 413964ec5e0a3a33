/**
 * TextStream and StopMatcher against hand-made decoders: a byte-level one (each token one UTF-8
 * byte, decoded with a non-fatal TextDecoder, so a split character shows as U+FFFD exactly as with a
 * byte-level BPE) and a SentencePiece-like one that drops the leading space of a decode.
 * @module
 */
import assert from "node:assert/strict";
import { TextStream } from "./text_stream.ts";
import { StopMatcher } from "./stop.ts";

const bytes = (s: string): number[] => [...new TextEncoder().encode(s)];
const byteDecode = (ids: number[]): string => new TextDecoder().decode(new Uint8Array(ids));

Deno.test("TextStream: multi-byte characters split across tokens are held back, never shown broken", () => {
  const text = "héllo 😀 wörld — ✓";
  const ids = bytes(text);
  for (const batch of [1, 2, 3, 5]) {
    const s = new TextStream(byteDecode);
    const deltas: string[] = [];
    for (let i = 0; i < ids.length; i += batch) deltas.push(s.push(ids.slice(i, i + batch)));
    deltas.push(s.flush());
    for (const d of deltas) assert.ok(!d.includes("\uFFFD"), `batch ${batch}: delta ${JSON.stringify(d)}`);
    assert.equal(deltas.join(""), text, `batch ${batch}`);
    assert.equal(s.text, text);
  }
  // The 4-byte emoji: nothing is shown until its last byte arrives.
  const s = new TextStream(byteDecode);
  assert.equal(s.push(bytes("a")), "a");
  const e = bytes("😀");
  assert.equal(s.push(e.slice(0, 1)), "");
  assert.equal(s.push(e.slice(1, 3)), "");
  assert.equal(s.push(e.slice(3)), "😀");
  // A broken character at the very end is flushed as U+FFFD (the output really ends with it).
  assert.equal(s.push(e.slice(0, 2)), "");
  assert.equal(s.flush(), "\uFFFD");
});

Deno.test("TextStream: decoders that drop a leading space keep it thanks to the left context", () => {
  const vocab = ["▁Hello", "▁wor", "ld", "!", "▁again"];
  const decode = (ids: number[]) => ids.map((i) => vocab[i]).join("").replaceAll("▁", " ").replace(/^ /, "");
  const s = new TextStream(decode);
  const out = [0, 1, 2, 3, 4].map((id) => s.push([id])).join("") + s.flush();
  assert.equal(out, "Hello world! again");
  assert.equal(out, decode([0, 1, 2, 3, 4]));
});

Deno.test("StopMatcher: held back while a stop can still match, cut before the first match", () => {
  const m = new StopMatcher(["\n\n", "END"]);
  assert.deepEqual(m.push("abc"), { delta: "abc", stopped: false });
  assert.deepEqual(m.push("E"), { delta: "", stopped: false }, "E may start END");
  assert.deepEqual(m.push("N"), { delta: "", stopped: false });
  assert.deepEqual(m.push("x"), { delta: "ENx", stopped: false }, "ENx can no longer match");
  assert.deepEqual(m.push("y\n"), { delta: "y", stopped: false });
  assert.deepEqual(m.push("\nz"), { delta: "", stopped: true });
  assert.equal(m.text, "abcENxy");
  assert.deepEqual(m.push("more"), { delta: "", stopped: true });

  // The earliest match wins, whichever stop string it is; a match inside one delta.
  const n = new StopMatcher(["bbb", "ab"]);
  assert.deepEqual(n.push("xxabbb"), { delta: "xx", stopped: true });
  assert.equal(n.text, "xx");

  // No match: flush releases what was held back.
  const f = new StopMatcher(["STOP"]);
  assert.equal(f.push("go ST").delta, "go ");
  assert.equal(f.flush(), "ST");
  assert.equal(f.text, "go ST");

  // No stop strings: everything passes through.
  const none = new StopMatcher([]);
  assert.deepEqual(none.push("a\n\nb"), { delta: "a\n\nb", stopped: false });
  assert.throws(() => new StopMatcher([""]), RangeError);
});
