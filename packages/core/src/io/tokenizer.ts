/**
 * Text ↔ token ids through `@huggingface/tokenizers` (a pure-JS port of the Rust `tokenizers`
 * library) built from a model directory's `tokenizer.json` + `tokenizer_config.json`. This wrapper
 * exists to (1) turn unreadable or malformed files into a ModelLoadError naming the file, (2) give
 * the rest of the engine a small camel-cased interface that does not leak the library's types, and
 * (3) normalise `tokenizer_config.json` quirks (special tokens written as `{content: ...}` objects)
 * that the library expects as plain strings.
 *
 * Checked against: the bundled `tiny` (byte-level BPE; its tokenizer adds no special tokens, prompts
 * carry them literally) reproduces transformers' `input_ids` and decoded text from reference.json;
 * `stories260K` (SentencePiece-style BPE with byte fallback) gets `<s>` from its post-processor.
 * @module
 */

import { Tokenizer } from "@huggingface/tokenizers";
import { ModelLoadError } from "../errors.ts";
import { describe, errText, isObject, joinPath, parseJsonObject, pathKind, readText } from "./_fs.ts";

/** A loaded tokenizer. */
export interface TextTokenizer {
  /** Token ids of `text`; `addSpecialTokens` (default true) runs the post-processor (e.g. adds `<s>`). */
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
  /** Text of `ids`; `skipSpecialTokens` (default false) drops special tokens such as `<|end|>`. */
  decode(ids: number[], opts?: { skipSpecialTokens?: boolean }): string;
  /** One more than the largest token id the tokenizer can produce (vocabulary incl. added tokens). */
  vocabSize: number;
  /** The beginning-of-sequence token text from tokenizer_config.json, if any. */
  bosToken?: string;
  /** The end-of-sequence token text from tokenizer_config.json, if any. */
  eosToken?: string;
  /** Id of a token given by its exact vocabulary text (e.g. `"<|end|>"`), or undefined. */
  tokenId(token: string): number | undefined;
}

/** Special-token fields of tokenizer_config.json that may be written as `{content: "..."}` objects. */
const TOKEN_FIELDS = [
  "bos_token",
  "eos_token",
  "unk_token",
  "pad_token",
  "sep_token",
  "cls_token",
  "mask_token",
];

/**
 * Read a special token from tokenizer_config.json: a string, an object with `content`, or absent/null.
 * `file` and `key` are named in the error when the value has another shape.
 */
export function specialTokenText(
  file: string,
  config: Record<string, unknown>,
  key: string,
): string | undefined {
  const v = config[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v === "string") return v;
  if (isObject(v) && typeof v.content === "string") return v.content;
  throw new ModelLoadError(file, `field "${key}" is ${describe(v)}; expected a string or {content: string}`);
}

/**
 * Load `dir/tokenizer.json` and (if present) `dir/tokenizer_config.json`. Throws ModelLoadError when
 * a file is missing, not JSON, or the tokenizer cannot be built from it.
 */
export async function loadTokenizer(dir: string): Promise<TextTokenizer> {
  const tokFile = joinPath(dir, "tokenizer.json");
  const cfgFile = joinPath(dir, "tokenizer_config.json");
  const json = parseJsonObject(tokFile, await readText(tokFile, "tokenizer"), "tokenizer.json");
  if (!isObject(json.model)) {
    throw new ModelLoadError(
      tokFile,
      `field "model" is ${describe(json.model)}; expected the tokenizer model object`,
    );
  }
  const config: Record<string, unknown> = await pathKind(cfgFile) === "file"
    ? parseJsonObject(cfgFile, await readText(cfgFile, "tokenizer config"), "tokenizer_config.json")
    : {};
  const libConfig: Record<string, unknown> = { ...config };
  for (const key of TOKEN_FIELDS) {
    const text = specialTokenText(cfgFile, config, key);
    if (text === undefined) delete libConfig[key];
    else libConfig[key] = text;
  }
  let tok: Tokenizer;
  try {
    tok = new Tokenizer(json, libConfig);
  } catch (e) {
    throw new ModelLoadError(tokFile, `cannot build tokenizer: ${errText(e)}`, { cause: e });
  }
  let maxId = -1;
  for (const id of tok.get_vocab(true).values()) if (id > maxId) maxId = id;
  if (maxId < 0) throw new ModelLoadError(tokFile, `field "model.vocab" is empty`);
  return {
    encode: (text, opts) => tok.encode(text, { add_special_tokens: opts?.addSpecialTokens ?? true }).ids,
    decode: (ids, opts) => tok.decode(ids, { skip_special_tokens: opts?.skipSpecialTokens ?? false }),
    vocabSize: maxId + 1,
    bosToken: specialTokenText(cfgFile, config, "bos_token"),
    eosToken: specialTokenText(cfgFile, config, "eos_token"),
    tokenId: (token) => tok.token_to_id(token),
  };
}
