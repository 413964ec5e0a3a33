import assert from "node:assert/strict";
import { type ChatMessage, loadChatTemplate, parseChatTemplate } from "./chat.ts";
import { assertLoadError, copyTiny, TINY_DIR } from "./_testing.ts";

interface RefCase {
  kind: string;
  prompt: string;
}

/** Recover the messages of a tiny chat prompt: `<|endoftext|>` then `<|role|>\n{content}<|end|>\n` per turn. */
function messagesOf(prompt: string): ChatMessage[] {
  const out: ChatMessage[] = [];
  for (const m of prompt.matchAll(/<\|(system|user|assistant)\|>\n([\s\S]*?)<\|end\|>\n/g)) {
    out.push({ role: m[1] as ChatMessage["role"], content: m[2] });
  }
  return out;
}

Deno.test("tiny chat template renders the reference.json chat prompts exactly", async () => {
  const tpl = await loadChatTemplate(TINY_DIR);
  assert.ok(tpl);
  const { cases } = JSON.parse(await Deno.readTextFile(`${TINY_DIR}/reference.json`)) as { cases: RefCase[] };
  const chats = cases.filter((c) => c.kind === "chat");
  assert.ok(chats.length >= 2);
  for (const c of chats) {
    const messages = messagesOf(c.prompt);
    assert.ok(messages.length > 0, c.prompt);
    assert.equal(tpl.render(messages, { addGenerationPrompt: true }), c.prompt);
  }
  assert.equal(
    tpl.render([{ role: "user", content: "hi" }]),
    "<|endoftext|><|user|>\nhi<|end|>\n",
  );
});

Deno.test("template from tokenizer_config.json when there is no chat_template.jinja; none → undefined", async () => {
  const dir = await copyTiny(["tokenizer_config.json"]);
  assert.equal(await loadChatTemplate(dir), undefined);
  const cfg = JSON.parse(await Deno.readTextFile(`${dir}/tokenizer_config.json`));
  cfg.chat_template =
    "{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{{ eos_token }}{% endfor %}";
  cfg.bos_token = { content: "<s>" };
  await Deno.writeTextFile(`${dir}/tokenizer_config.json`, JSON.stringify(cfg));
  const tpl = await loadChatTemplate(dir);
  assert.equal(tpl?.render([{ role: "user", content: "a" }]), "<s>[user]a<|end|>");
  cfg.chat_template = [{ name: "tool_use", template: "T" }, { name: "default", template: "D" }];
  await Deno.writeTextFile(`${dir}/tokenizer_config.json`, JSON.stringify(cfg));
  assert.equal((await loadChatTemplate(dir))?.render([]), "D");
});

Deno.test("bad templates name the file", async () => {
  const dir = await copyTiny(["tokenizer_config.json"]);
  await Deno.writeTextFile(`${dir}/chat_template.jinja`, "{% for m in messages %}{{ m.content }");
  await assertLoadError(loadChatTemplate(dir), "chat_template.jinja", "does not parse");
  const cfg = JSON.parse(await Deno.readTextFile(`${dir}/tokenizer_config.json`));
  cfg.chat_template = 42;
  await Deno.remove(`${dir}/chat_template.jinja`);
  await Deno.writeTextFile(`${dir}/tokenizer_config.json`, JSON.stringify(cfg));
  await assertLoadError(loadChatTemplate(dir), "tokenizer_config.json", `"chat_template"`);
  const raising = parseChatTemplate("t.jinja", "{{ raise_exception('only user turns') }}");
  await assertLoadError(() => raising.render([]), "t.jinja", "only user turns");
});
