// The playground page's script (served as is: no build step, no dependencies). It posts the chat to
// /playground/generate, reads the SSE reply with fetch + TextDecoderStream, and draws for each decode
// cycle the draft tree (tidy layout: depth along x, siblings stacked along y; accepted path green, bonus
// blue, rejected grey), a timeline of accepted lengths with the running τ, a per-depth acceptance
// histogram, and the output text coloured by cycle (accepted draft tokens vs target/bonus tokens).
// State for tests: <body data-state="idle|running|done|error">, <svg id="tree" data-nodes data-accepted>.

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const state = {
  messages: [],
  cycles: [],
  selected: -1,
  controller: null,
  text: "",
  info: null,
  speculative: true,
};

function el(name, attrs = {}, parent = null) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (parent) parent.appendChild(e);
  return e;
}

/** Token piece with visible whitespace. */
function visible(piece) {
  return piece.replace(/ /g, "·").replace(/\n/g, "↵").replace(/\t/g, "→") || "∅";
}

function headers() {
  const h = { "content-type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) h.authorization = `Bearer ${key}`;
  return h;
}

async function loadInfo() {
  try {
    const res = await fetch("/v1/models", { headers: headers() });
    if (!res.ok) throw new Error((await res.json()).error?.message ?? res.statusText);
    const m = (await res.json()).data[0];
    state.info = m;
    const t = m.meta.tree;
    $("info").textContent = `model ${m.root} · draft ${m.meta.draft ?? "none (plain decoding)"}` +
      (t ? ` · tree ${t.totalTokens}/${t.depth}/${t.topK}` : "") +
      ` · context ${m.max_model_len} · ${m.meta.adapter}`;
  } catch (e) {
    $("info").textContent = `model info unavailable: ${e.message}`;
  }
}

function setStat(id, v) {
  $(id).textContent = v;
}

function runningTau() {
  const n = state.cycles.length;
  if (!n) return 0;
  return state.cycles.reduce((s, c) => s + c.new_tokens.length, 0) / n;
}

// ---------- output text ----------
function appendCycleText(c) {
  const out = $("output");
  const shade = c.index % 2 ? "c1" : "c0";
  const span = (text, cls, title) => {
    const e = document.createElement("span");
    e.className = `tok ${cls}`;
    e.dataset.cycle = String(c.index);
    e.title = title;
    e.textContent = text;
    e.addEventListener("click", () => selectCycle(c.index));
    out.appendChild(e);
  };
  // The output's first token comes from the prefill: it is the first cycle's root.
  if (c.index === 0) span(c.pieces[0], "c1 bonus", "first token (from the prompt's prefill)");
  const drafts = c.accepted.length - 1;
  c.new_pieces.forEach((piece, i) => {
    const isBonus = i >= drafts;
    span(
      piece,
      `${shade} ${isBonus ? "bonus" : "draft"}`,
      `cycle ${c.index + 1}: ${isBonus ? "target (bonus) token" : `accepted draft token, depth ${i + 1}`}`,
    );
  });
}

// ---------- tree ----------
function drawTree(c) {
  const svg = $("tree");
  svg.replaceChildren();
  if (!c) {
    svg.setAttribute("width", "10");
    svg.setAttribute("height", "10");
    return;
  }
  const n = c.tokens.length;
  const children = Array.from({ length: n }, () => []);
  for (let i = 1; i < n; i++) if (c.parents[i] >= 0) children[c.parents[i]].push(i);
  const onPath = new Set(c.accepted);
  // Accepted child first, so the path runs along the top.
  for (const ch of children) ch.sort((a, b) => (onPath.has(b) ? 1 : 0) - (onPath.has(a) ? 1 : 0) || a - b);
  const y = new Array(n).fill(0);
  const last = c.accepted[c.accepted.length - 1];
  let leaf = 0, bonusY = 0;
  const place = (i) => {
    if (children[i].length === 0) {
      y[i] = leaf++;
      if (i === last) bonusY = y[i]; // the bonus continues the path on the same row
      return;
    }
    children[i].forEach(place);
    y[i] = y[children[i][0]];
    if (i === last) bonusY = leaf++; // below the rejected drafts of the last accepted node
  };
  place(0);
  const colW = 78, rowH = 24, padX = 10, padY = 20, boxW = 66, boxH = 18;
  const maxDepth = Math.max(...c.depths);
  const X = (d) => padX + d * colW;
  const Y = (r) => padY + r * rowH;
  // The bonus node goes one column after the last accepted node.
  const bonusDepth = c.depths[last] + 1;
  const width = X(Math.max(maxDepth, bonusDepth)) + boxW + padX;
  const height = Y(Math.max(leaf, 1)) + padY;
  svg.setAttribute("width", String(width));
  svg.setAttribute("height", String(height));
  svg.dataset.nodes = String(n);
  svg.dataset.accepted = String(c.accepted.length - 1);
  for (let d = 0; d <= Math.max(maxDepth, bonusDepth); d++) {
    el("text", { x: X(d) + 2, y: 10, class: "depth" }, svg).textContent = d === 0 ? "root" : `depth ${d}`;
  }
  const edge = (a, cls, xb, yb) => {
    const x1 = X(c.depths[a]) + boxW, y1 = Y(y[a]) + boxH / 2, x2 = xb, y2 = yb + boxH / 2;
    const mx = (x1 + x2) / 2;
    el("path", { d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, class: `edge ${cls}` }, svg);
  };
  for (let i = 1; i < n; i++) {
    const p = c.parents[i];
    edge(p, onPath.has(i) && onPath.has(p) ? "accepted" : "", X(c.depths[i]), Y(y[i]));
  }
  edge(last, "bonus", X(bonusDepth), Y(bonusY));
  const node = (x, yy, label, cls, title) => {
    const g = el("g", { class: `node ${cls}`, transform: `translate(${x},${yy})` }, svg);
    el("rect", { width: boxW, height: boxH, rx: 4 }, g);
    const t = el("text", { x: 4, y: boxH / 2 }, g);
    t.textContent = label.length > 9 ? label.slice(0, 8) + "…" : label;
    el("title", {}, g).textContent = title;
    return g;
  };
  for (let i = 0; i < n; i++) {
    const cls = i === 0 ? "root" : onPath.has(i) ? "accepted" : "rejected";
    const what = i === 0
      ? "root (last committed token)"
      : onPath.has(i)
      ? "accepted draft"
      : "rejected draft";
    node(
      X(c.depths[i]),
      Y(y[i]),
      visible(c.pieces[i]),
      cls,
      `${JSON.stringify(c.pieces[i])} · id ${c.tokens[i]} · depth ${c.depths[i]} · ${what}`,
    );
  }
  node(
    X(bonusDepth),
    Y(bonusY),
    visible(c.bonus_piece),
    "bonus",
    `${JSON.stringify(c.bonus_piece)} · id ${c.bonus} · bonus token from the target`,
  );
  $("cycle-head").textContent =
    `cycle ${c.index + 1} of ${state.cycles.length} · ${n} tree nodes · depth ${maxDepth} · ` +
    `accepted ${c.accepted.length - 1} draft(s) + bonus · ${c.new_tokens.length} token(s) committed · t = ${
      (c.t_ms / 1000).toFixed(2)
    } s`;
}

// ---------- timeline + histogram ----------
function drawTimeline() {
  const svg = $("timeline");
  svg.replaceChildren();
  const cs = state.cycles;
  const H = 120, top = 8, bottom = 16, W = Math.max(560, cs.length * 8 + 40);
  svg.setAttribute("width", String(W));
  const maxL = Math.max(2, ...cs.map((c) => c.new_tokens.length));
  const bw = Math.max(3, Math.min(14, (W - 40) / Math.max(cs.length, 1) - 1));
  const sy = (v) => H - bottom - (v / maxL) * (H - top - bottom);
  el("text", { x: 0, y: sy(maxL) + 4 }, svg).textContent = String(maxL);
  el("text", { x: 0, y: sy(0) }, svg).textContent = "0";
  let sum = 0;
  const pts = [];
  cs.forEach((c, i) => {
    const L = c.new_tokens.length;
    sum += L;
    const x = 20 + i * (bw + 1);
    const r = el("rect", {
      x,
      y: sy(L),
      width: bw,
      height: sy(0) - sy(L),
      class: `bar${i === state.selected ? " sel" : ""}`,
    }, svg);
    el("title", {}, r).textContent = `cycle ${i + 1}: ${L} tokens`;
    r.addEventListener("click", () => selectCycle(i));
    pts.push(`${x + bw / 2},${sy(sum / (i + 1))}`);
  });
  if (pts.length) el("polyline", { points: pts.join(" "), class: "tau" }, svg);
  el("text", { x: 20, y: H - 2 }, svg).textContent = `${cs.length} cycles · τ ${runningTau().toFixed(2)}`;
}

function drawHistogram() {
  const svg = $("hist");
  svg.replaceChildren();
  const cs = state.cycles;
  if (!cs.length) return;
  const maxD = Math.max(1, ...cs.map((c) => c.accepted.length - 1));
  const rate = [];
  for (let d = 1; d <= maxD; d++) rate.push(cs.filter((c) => c.accepted.length - 1 >= d).length / cs.length);
  const H = 120, bw = Math.min(30, 180 / rate.length - 4);
  rate.forEach((r, i) => {
    const h = r * (H - 30);
    const rect = el("rect", { x: 10 + i * (bw + 4), y: H - 16 - h, width: bw, height: h }, svg);
    el("title", {}, rect).textContent = `depth ${i + 1}: ${(100 * r).toFixed(0)} % of cycles`;
    el("text", { x: 10 + i * (bw + 4), y: H - 4 }, svg).textContent = `d${i + 1}`;
  });
  el("text", { x: 10, y: 10 }, svg).textContent = "P(accept ≥ depth)";
}

function selectCycle(i) {
  state.selected = i;
  drawTree(state.cycles[i]);
  drawTimeline();
  for (const s of document.querySelectorAll("#output span.tok")) {
    s.classList.toggle("sel", s.dataset.cycle === String(i));
  }
}

// ---------- streaming ----------
function resetView() {
  state.cycles = [];
  state.selected = -1;
  state.text = "";
  $("output").replaceChildren();
  $("error").textContent = "";
  $("cycle-head").textContent = "";
  drawTree(null);
  drawTimeline();
  drawHistogram();
  for (const id of ["s-tau", "s-tps", "s-ttft", "s-cycles", "s-tokens", "s-finish"]) setStat(id, "–");
}

function addMessage(role, text) {
  const d = document.createElement("div");
  d.className = `msg ${role}`;
  d.textContent = `${role === "user" ? "you" : "assistant"}: ${text}`;
  $("chat").appendChild(d);
  return d;
}

async function* sseEvents(res) {
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  while (true) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let k;
    while ((k = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, k);
      buf = buf.slice(k + 2);
      let event = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) event = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (data) yield { event, data: JSON.parse(data) };
    }
  }
}

async function send(ev) {
  ev.preventDefault();
  const prompt = $("prompt").value.trim();
  if (!prompt || state.controller) return;
  resetView();
  state.messages.push({ role: "user", content: prompt });
  addMessage("user", prompt);
  const reply = addMessage("assistant", "");
  const controller = new AbortController();
  state.controller = controller;
  $("send").disabled = true;
  $("stop").disabled = false;
  document.body.dataset.state = "running";
  const t0 = performance.now();
  let ttft = null;
  const body = {
    messages: state.messages,
    max_tokens: Number($("max-tokens").value) || 64,
    temperature: Number($("temperature").value) || 0,
    seed: Number($("seed").value) || 0,
    speculative: $("speculative").checked,
  };
  try {
    const res = await fetch("/playground/generate", {
      method: "POST",
      headers: headers(),
      body: JSON.stringify(body),
      signal: controller.signal,
    });
    if (!res.ok) throw new Error((await res.json()).error?.message ?? `HTTP ${res.status}`);
    for await (const { event, data } of sseEvents(res)) {
      if (event === "meta") {
        state.speculative = data.speculative;
        if (!data.speculative) $("cycle-head").textContent = "plain decoding: no draft tree";
      } else if (event === "cycle") {
        state.cycles.push(data);
        appendCycleText(data);
        if (state.selected === state.cycles.length - 2 || state.selected < 0) {
          selectCycle(state.cycles.length - 1);
        } else drawTimeline();
        drawHistogram();
        setStat("s-tau", runningTau().toFixed(2));
        setStat("s-cycles", String(state.cycles.length));
      } else if (event === "text") {
        if (ttft === null) ttft = (performance.now() - t0) / 1000;
        state.text += data.delta;
        reply.textContent = `assistant: ${state.text}`;
        if (!state.speculative) $("output").textContent = state.text;
        setStat("s-ttft", ttft.toFixed(2));
      } else if (event === "done") {
        state.text = data.text;
        reply.textContent = `assistant: ${data.text}`;
        state.messages.push({ role: "assistant", content: data.text });
        setStat("s-tps", data.tokens_per_second.toFixed(1));
        setStat("s-tokens", String(data.usage.completion_tokens));
        setStat("s-finish", data.finish_reason);
        if (data.speculative) setStat("s-tau", data.speculative.acceptance_length.toFixed(2));
        document.body.dataset.state = "done";
      } else if (event === "error") {
        throw new Error(data.error?.message ?? "generation failed");
      }
    }
    if (document.body.dataset.state !== "done") throw new Error("the stream ended early");
  } catch (e) {
    if (controller.signal.aborted) {
      document.body.dataset.state = "idle";
      $("error").textContent = "stopped";
    } else {
      document.body.dataset.state = "error";
      $("error").textContent = e.message;
    }
    state.messages.pop();
  } finally {
    state.controller = null;
    $("send").disabled = false;
    $("stop").disabled = true;
  }
}

$("form").addEventListener("submit", send);
$("stop").addEventListener("click", () => state.controller?.abort());
$("clear").addEventListener("click", () => {
  state.messages = [];
  $("chat").replaceChildren();
  resetView();
});
$("api-key").addEventListener("change", loadInfo);
resetView();
loadInfo();
