/**
 * `linkWgsl`, the one place where WGSL fragments are composed into kernels: the include line is
 * replaced in place (the text around it untouched), bad includes fail with the kernel's and the
 * fragment's names, and the linked attention kernels each hold exactly one copy of the online softmax.
 * Compiling and running the linked kernels is covered by the attention op tests in @gto/core.
 */
import assert from "node:assert/strict";
import {
  ATTENTION_ONLINE_WGSL,
  ATTENTION_ROPE_WGSL,
  ATTENTION_SPLIT_WGSL,
  ATTENTION_WGSL,
  linkWgsl,
} from "./mod.ts";

const count = (s: string, sub: string): number => s.split(sub).length - 1;

Deno.test("linkWgsl replaces an include line in place and leaves other text alone", () => {
  const frags = { "f.wgsl": "const A: u32 = 1u;\n\n" };
  const code = "// head\nvar<workgroup> x: array<f32, 4>;\n// #include f.wgsl\nfn g() {}\n";
  assert.equal(
    linkWgsl("k.wgsl", code, frags),
    "// head\nvar<workgroup> x: array<f32, 4>;\nconst A: u32 = 1u;\nfn g() {}\n",
  );
  // Only a whole comment line is an include; a mention inside a comment is not.
  const prose = "// see `// #include f.wgsl` in the kernels\nfn g() {}\n";
  assert.equal(linkWgsl("k.wgsl", prose, frags), prose);
});

Deno.test("linkWgsl: unknown, repeated and nested includes fail naming kernel and fragment", () => {
  const frags = { "f.wgsl": "const A: u32 = 1u;", "n.wgsl": "// #include f.wgsl" };
  assert.throws(
    () => linkWgsl("k.wgsl", "// #include nope.wgsl\n", frags),
    /^Error: k\.wgsl: #include nope\.wgsl: no such WGSL fragment$/,
  );
  assert.throws(
    () => linkWgsl("k.wgsl", "// #include f.wgsl\n// #include f.wgsl\n", frags),
    /included twice/,
  );
  assert.throws(
    () => linkWgsl("k.wgsl", "// #include n.wgsl\n", frags),
    /k\.wgsl: #include n\.wgsl: a fragment/,
  );
  assert.throws(() => linkWgsl("k.wgsl", "// #include toString\n", frags), /no such WGSL fragment/);
});

Deno.test("the three workgroup attention kernels hold exactly one copy of the online softmax", () => {
  assert.ok(ATTENTION_ONLINE_WGSL.includes("fn online_tile("));
  for (
    const [name, code] of [["attention", ATTENTION_WGSL], ["rope", ATTENTION_ROPE_WGSL], [
      "split",
      ATTENTION_SPLIT_WGSL,
    ]]
  ) {
    assert.ok(code.includes(ATTENTION_ONLINE_WGSL.trimEnd()), `${name}: fragment linked verbatim`);
    assert.equal(count(code, "#include"), count(ATTENTION_ONLINE_WGSL, "#include"), `${name}: resolved`);
    for (const decl of ["\nfn online_tile(", "\nconst NKG", "\nvar<workgroup> sc", "let alpha = exp("]) {
      assert.equal(count(code, decl), 1, `${name}: one ${decl}`);
    }
    assert.equal(count(code, "\nfn tile_value("), 1, `${name}: provides the value hook`);
  }
});
