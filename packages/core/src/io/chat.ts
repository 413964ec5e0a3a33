/**
 * Chat templates: turn a list of messages into the exact prompt text the model was trained on, with
 * `@huggingface/jinja` (the JS port of the Jinja subset transformers uses). The template comes from
 * `chat_template.jinja` when present (transformers ≥ 4.43 writes it there), else from the
 * `chat_template` field of `tokenizer_config.json`; `bos_token` / `eos_token` come from
 * tokenizer_config.json. Serving and benchmarks must render prompts byte-for-byte like transformers,
 * or acceptance lengths measured here would not be comparable.
 *
 * {@link encodeChat} is the one chat → token ids path of the project (engine, trainer, benchmarks):
 * the template writes every special token itself (`{{ bos_token }}`), so the text is tokenized with
 * `addSpecialTokens: false`, as transformers' `apply_chat_template(tokenize=True)` does. Tokenizing
 * with the post-processor on would add a second BOS on tokenizers whose post-processor adds one
 * (LLaMA-3 style), a train/serve skew.
 * @module
 */

import { Template } from "@huggingface/jinja";
import { ModelLoadError } from "../errors.ts";
import { describe, errText, isObject, joinPath, parseJsonObject, pathKind, readText } from "./_fs.ts";
import { specialTokenText, type TextTokenizer } from "./tokenizer.ts";

/** One chat turn. */
export interface ChatMessage {
  /** Who speaks. */
  role: "system" | "user" | "assistant";
  /** The turn's text. */
  content: string;
}

/** A parsed chat template. */
export interface ChatTemplate {
  /**
   * Render messages to prompt text (special tokens included as text). `addGenerationPrompt`
   * (default false) appends the assistant header so the model continues as the assistant.
   */
  render(messages: ChatMessage[], opts?: { addGenerationPrompt?: boolean }): string;
}

/**
 * Load the chat template of a model directory, or undefined when it has none. Throws ModelLoadError
 * when the template source does not parse or tokenizer_config.json is malformed.
 */
export async function loadChatTemplate(dir: string): Promise<ChatTemplate | undefined> {
  const jinjaFile = joinPath(dir, "chat_template.jinja");
  const cfgFile = joinPath(dir, "tokenizer_config.json");
  const config = await pathKind(cfgFile) === "file"
    ? parseJsonObject(cfgFile, await readText(cfgFile, "tokenizer config"), "tokenizer_config.json")
    : {};
  let source: string | undefined;
  let file: string;
  if (await pathKind(jinjaFile) === "file") {
    source = await readText(jinjaFile, "chat template");
    file = jinjaFile;
  } else {
    file = cfgFile;
    source = templateFromConfig(cfgFile, config.chat_template);
  }
  if (source === undefined) return undefined;
  return parseChatTemplate(file, source, {
    bos_token: specialTokenText(cfgFile, config, "bos_token") ?? "",
    eos_token: specialTokenText(cfgFile, config, "eos_token") ?? "",
  });
}

/**
 * Parse template `source` (from `file`, named in errors) with extra render variables such as
 * `bos_token`. Rendering errors (e.g. the template calling the built-in `raise_exception`) become
 * ModelLoadError.
 */
export function parseChatTemplate(
  file: string,
  source: string,
  vars: Record<string, string> = {},
): ChatTemplate {
  let tpl: Template;
  try {
    tpl = new Template(source);
  } catch (e) {
    throw new ModelLoadError(file, `chat template does not parse: ${errText(e)}`, { cause: e });
  }
  return {
    render(messages: ChatMessage[], opts?: { addGenerationPrompt?: boolean }): string {
      try {
        return tpl.render({
          ...vars,
          messages,
          add_generation_prompt: opts?.addGenerationPrompt ?? false,
        });
      } catch (e) {
        throw new ModelLoadError(file, `chat template failed to render: ${errText(e)}`, { cause: e });
      }
    },
  };
}

/** `chat_template` may be a string or a list of `{name, template}` (pick "default"). */
function templateFromConfig(file: string, v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === "string") return v;
  if (Array.isArray(v)) {
    const named = v.filter(isObject);
    const pick = named.find((t) => t.name === "default") ?? named[0];
    if (pick && typeof pick.template === "string") return pick.template;
  }
  throw new ModelLoadError(
    file,
    `field "chat_template" is ${describe(v)}; expected a string or a list of {name, template}`,
  );
}

/**
 * Prompt token ids of `messages`: the model's chat template with the generation prompt appended,
 * tokenized without extra special tokens (the template writes them). Throws ModelLoadError naming
 * the directory when it has no chat template.
 */
export function encodeChat(
  dir: { dir: string; tokenizer: TextTokenizer; chatTemplate?: ChatTemplate },
  messages: ChatMessage[],
): number[] {
  if (!dir.chatTemplate) {
    throw new ModelLoadError(
      dir.dir,
      "no chat template (chat_template.jinja or tokenizer_config.json chat_template); chat prompts need one",
    );
  }
  const text = dir.chatTemplate.render(messages, { addGenerationPrompt: true });
  return dir.tokenizer.encode(text, { addSpecialTokens: false });
}
