/**
 * `POST /tokenize` and `POST /detokenize` in vLLM's shapes: `{prompt}` or `{messages,
 * add_generation_prompt}` (plus `add_special_tokens`, `return_token_strs`) → `{count, max_model_len,
 * tokens, token_strs?}`; `{tokens}` → `{prompt}`. llama.cpp's `content` key is accepted for the prompt.
 * `model` is optional but must name the served model when given.
 * @module
 */
import { Hono } from "hono";
import { readJson } from "../body.ts";
import type { ServerContext } from "../context.ts";
import { badRequest } from "../errors.ts";
import { checkModel, engineInputToApi } from "../generation.ts";
import { parseChatRequest, requireObject } from "../validate.ts";

function optBool(o: Record<string, unknown>, key: string): boolean | undefined {
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "boolean") {
    throw badRequest(`Invalid type for '${key}': expected a boolean.`, key, "invalid_type");
  }
  return v;
}

/** The tokenize/detokenize routes. */
export function tokenizeRoute(ctx: ServerContext): Hono {
  const app = new Hono();
  app.post("/tokenize", async (c) => {
    const o = requireObject(await readJson(c));
    if (o.model !== undefined && typeof o.model !== "string") {
      throw badRequest("Invalid type for 'model': expected a string.", "model", "invalid_type");
    }
    checkModel(ctx, o.model as string | undefined);
    const engine = ctx.engine();
    const addSpecial = optBool(o, "add_special_tokens");
    const withStrs = optBool(o, "return_token_strs") ?? optBool(o, "with_pieces") ?? false;
    let tokens: number[];
    try {
      if (o.messages !== undefined) {
        const { messages } = parseChatRequest({ model: "", messages: o.messages });
        tokens = engine.tokenize("", { chat: messages, addSpecialTokens: addSpecial });
      } else {
        const text = o.prompt ?? o.content;
        if (typeof text !== "string") {
          throw badRequest(
            "Give 'prompt' (a string) or 'messages'.",
            o.prompt === undefined ? "prompt" : "prompt",
          );
        }
        tokens = engine.tokenize(text, { addSpecialTokens: addSpecial });
      }
    } catch (e) {
      throw engineInputToApi(e) ?? e;
    }
    const body: Record<string, unknown> = {
      count: tokens.length,
      max_model_len: engine.info.maxContext,
      tokens,
    };
    if (withStrs) body.token_strs = tokens.map((t) => engine.detokenize([t]));
    return c.json(body);
  });
  app.post("/detokenize", async (c) => {
    const o = requireObject(await readJson(c));
    if (o.model !== undefined && typeof o.model !== "string") {
      throw badRequest("Invalid type for 'model': expected a string.", "model", "invalid_type");
    }
    checkModel(ctx, o.model as string | undefined);
    const engine = ctx.engine();
    const t = o.tokens;
    if (
      !Array.isArray(t) ||
      !t.every((x) => typeof x === "number" && Number.isInteger(x) && x >= 0 && x < 2 ** 31)
    ) {
      throw badRequest(
        "'tokens' must be an array of non-negative integer token ids.",
        "tokens",
        "invalid_type",
      );
    }
    let text: string;
    try {
      text = engine.detokenize(t as number[]);
    } catch (e) {
      // The engine names its own argument (`ids`, `prompt[i]`); the request field is `tokens`.
      throw badRequest(`cannot detokenize: ${(e as Error).message}`, "tokens", "invalid_value");
    }
    return c.json({ prompt: text });
  });
  return app;
}
