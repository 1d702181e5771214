// The Avatar web UI: plain DOM, no build step. Talks to the same API as any client.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { token: localStorage.getItem("avatar.token") || "", avatars: [], history: [] };

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "onclick") e.addEventListener("click", v);
    else if (k in e) e[k] = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function notice(text) { $("notice").textContent = text || ""; }
function avatar() { return $("avatar").value; }
function current() { return state.avatars.find((a) => a.id === avatar()); }

async function api(path, opts = {}) {
  const headers = Object.assign({ Authorization: "Bearer " + state.token }, opts.headers || {});
  if (opts.body) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, Object.assign({}, opts, { headers }));
  if (!resp.ok) {
    let msg = resp.status + " " + resp.statusText;
    try { msg = (await resp.json()).error.message; } catch (_) { /* not JSON */ }
    throw new Error(msg);
  }
  return resp;
}

// ---- token and avatars ----
async function loadAvatars() {
  notice("");
  try {
    const data = await (await api("/api/avatars")).json();
    state.avatars = data.avatars;
    const sel = $("avatar");
    sel.replaceChildren(...data.avatars.map((a) => el("option", { value: a.id, textContent: `${a.name} (${a.role})` })));
    if (!data.avatars.length) notice("This token sees no avatar.");
    onAvatarChange();
  } catch (e) { notice("Could not load avatars: " + e.message); }
}

function onAvatarChange() {
  const a = current();
  state.history = [];
  $("log").replaceChildren();
  let line = a ? a.disclosure || "" : "";
  if (a && !a.has_model) line += (line ? " " : "") + "No personal model is trained yet: answers come from the base model.";
  $("disclosure").textContent = line;
  const canEdit = a && (a.role === "owner" || a.role === "editor");
  $("memory-form").hidden = !canEdit;
  if (!$("memories").hidden) loadMemories();
  if (!$("status").hidden) loadStatus();
}

$("login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  state.token = $("token").value.trim();
  localStorage.setItem("avatar.token", state.token);
  loadAvatars();
});
$("avatar").addEventListener("change", onAvatarChange);

// ---- tabs ----
const tabs = ["chat", "search", "memories", "status"];
function show(name) {
  for (const t of tabs) {
    $(t).hidden = t !== name;
    $("tab-" + t).setAttribute("aria-selected", String(t === name));
  }
  if (name === "memories") loadMemories();
  if (name === "status") loadStatus();
}
for (const t of tabs) $("tab-" + t).addEventListener("click", () => show(t));

// ---- citations and the record panel ----
function citationList(cites) {
  const box = el("div", { className: "cites" }, "Sources: ");
  cites.forEach((c, i) => {
    const label = `[${i + 1}] ${c.title || c.author || c.source}`;
    box.append(el("button", { type: "button", textContent: label, onclick: () => openRecord(c.record) }));
  });
  return box;
}

async function openRecord(id) {
  try {
    const r = await (await api(`/api/records/${encodeURIComponent(id)}?avatar=${encodeURIComponent(avatar())}`)).json();
    $("panel-title").textContent = r.title || "Record";
    const meta = $("panel-meta");
    meta.replaceChildren();
    for (const k of ["source", "kind", "author", "timestamp", "thread"]) {
      if (r[k]) meta.append(el("dt", { textContent: k }), el("dd", { textContent: String(r[k]) }));
    }
    $("panel-text").textContent = r.text;
    $("panel").hidden = false;
    $("panel-close").focus();
  } catch (e) { notice("Could not open the record: " + e.message); }
}
$("panel-close").addEventListener("click", () => { $("panel").hidden = true; });
document.addEventListener("keydown", (ev) => { if (ev.key === "Escape") $("panel").hidden = true; });

// ---- chat (streamed) ----
async function send() {
  const text = $("question").value.trim();
  // Enter in the box bypasses the disabled Send button: one answer at a time.
  if (!text || !avatar() || $("send").disabled) return;
  $("question").value = "";
  $("send").disabled = true;
  const log = $("log");
  log.append(el("div", { className: "msg user" }, el("span", { textContent: text })));
  const out = el("div", { className: "msg assistant" });
  log.append(out);
  state.history.push({ role: "user", content: text });
  let answer = "";
  try {
    const resp = await api("/v1/chat/completions", {
      method: "POST",
      body: JSON.stringify({ model: avatar(), messages: state.history, stream: true }),
    });
    const reader = resp.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        const event = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        for (const line of event.split("\n")) {
          if (!line.startsWith("data: ")) continue;
          const data = line.slice(6);
          if (data === "[DONE]") continue;
          const chunk = JSON.parse(data);
          if (chunk.error) throw new Error(chunk.error.message);
          const choice = chunk.choices && chunk.choices[0];
          if (choice && choice.delta && choice.delta.content) {
            answer += choice.delta.content;
            out.textContent = answer;
            log.scrollTop = log.scrollHeight;
          }
          if (chunk.citations && chunk.citations.length) out.after(citationList(chunk.citations));
        }
      }
    }
    state.history.push({ role: "assistant", content: answer });
  } catch (e) {
    state.history.pop();
    out.textContent = "⚠ " + e.message;
  } finally {
    $("send").disabled = false;
    $("question").focus();
  }
}
$("ask").addEventListener("submit", (ev) => { ev.preventDefault(); send(); });
$("question").addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); send(); }
});

// ---- search ----
/** The API marks matched words as **word**: show them as <mark>, built as text nodes, never HTML. */
function highlighted(snippet) {
  return String(snippet || "").split("**").map((part, i) => (i % 2 ? el("mark", { textContent: part }) : part));
}

// Only the latest search may fill the list: an earlier, slower answer (the first hybrid query
// loads the embedding model) must not land on top of it or be shown twice.
let searchSeq = 0;
$("search-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const p = new URLSearchParams({ avatar: avatar(), q: $("q").value, mode: $("mode").value });
  for (const k of ["source", "author", "since", "until"]) if ($(k).value) p.set(k, $(k).value);
  const list = $("hits");
  const seq = ++searchSeq;
  list.replaceChildren(el("li", { className: "meta", textContent: "Searching…" }));
  list.setAttribute("aria-busy", "true");
  try {
    const data = await (await api("/api/search?" + p)).json();
    if (seq !== searchSeq) return;
    list.replaceChildren();
    if (!data.hits.length) list.append(el("li", { textContent: "No results." }));
    for (const h of data.hits) {
      const meta = [h.memory ? "memory" : h.source, h.author, h.timestamp && h.timestamp.slice(0, 10), "score " + h.score.toFixed(3)]
        .filter(Boolean).join(" · ");
      list.append(el("li", {},
        el("button", { type: "button", className: "cite-link", textContent: h.title || h.record, onclick: () => openRecord(h.record) }),
        el("div", { className: "meta", textContent: meta }),
        el("div", { className: "snippet" }, ...highlighted(h.snippet))));
    }
  } catch (e) {
    if (seq === searchSeq) { list.replaceChildren(); notice("Search failed: " + e.message); }
  } finally {
    if (seq === searchSeq) list.removeAttribute("aria-busy");
  }
});

// ---- memories ----
async function loadMemories() {
  if (!avatar()) return;
  const list = $("memory-list");
  try {
    const data = await (await api("/api/memories?avatar=" + encodeURIComponent(avatar()))).json();
    const a = current();
    const canEdit = a && (a.role === "owner" || a.role === "editor");
    list.replaceChildren(...data.memories.map((m) => {
      const li = el("li", {},
        el("strong", { textContent: m.title || "" }),
        el("div", { className: "snippet", textContent: m.text }),
        el("div", { className: "meta", textContent: [m.added_by, m.timestamp && m.timestamp.slice(0, 10)].filter(Boolean).join(" · ") }));
      if (canEdit) {
        li.append(
          el("button", { type: "button", textContent: "Edit", onclick: () => editMemory(m) }),
          el("button", { type: "button", textContent: "Delete", onclick: () => deleteMemory(m.id) }));
      }
      return li;
    }));
    if (!data.memories.length) list.append(el("li", { textContent: "No memories yet." }));
  } catch (e) { notice("Could not load memories: " + e.message); }
}

function editMemory(m) {
  $("mem-title").value = m.title || "";
  $("mem-text").value = m.text;
  $("mem-by").value = m.added_by || "";
  $("mem-editing").value = m.id;
  $("mem-save").textContent = "Save memory";
  $("mem-cancel").hidden = false;
  $("mem-text").focus();
}

function resetMemoryForm() {
  $("memory-form").reset();
  $("mem-editing").value = "";
  $("mem-save").textContent = "Add memory";
  $("mem-cancel").hidden = true;
}
$("mem-cancel").addEventListener("click", resetMemoryForm);

async function deleteMemory(id) {
  try {
    await api(`/api/memories/${encodeURIComponent(id)}?avatar=${encodeURIComponent(avatar())}`, { method: "DELETE" });
    await loadMemories();
  } catch (e) { notice("Could not delete: " + e.message); }
}

$("memory-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const body = { text: $("mem-text").value, title: $("mem-title").value || null, added_by: $("mem-by").value || null };
  try {
    // Memories are events: an edit adds the new text, then forgets the old one.
    await api("/api/memories?avatar=" + encodeURIComponent(avatar()), { method: "POST", body: JSON.stringify(body) });
    const old = $("mem-editing").value;
    if (old) await api(`/api/memories/${encodeURIComponent(old)}?avatar=${encodeURIComponent(avatar())}`, { method: "DELETE" });
    resetMemoryForm();
    await loadMemories();
  } catch (e) { notice("Could not save: " + e.message); }
});

// ---- status ----
async function loadStatus() {
  if (!avatar()) return;
  try {
    const s = await (await api("/api/status?avatar=" + encodeURIComponent(avatar()))).json();
    $("status-out").textContent = JSON.stringify(s, null, 2);
  } catch (e) { $("status-out").textContent = "Could not load status: " + e.message; }
}
$("refresh-status").addEventListener("click", loadStatus);

// ---- start ----
$("token").value = state.token;
if (state.token) loadAvatars();
