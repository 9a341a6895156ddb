/* Asthron chat widget. Embed: <script src="https://HOST/widget.js" data-key="PUBLIC_KEY" async></script>
   No framework, no third-party requests. Every text is set with textContent, never as markup. */
(() => {
  "use strict";
  const me = document.currentScript ||
    document.querySelector('script[data-key][src*="widget.js"]:not([data-asthron-seen])');
  if (!me) return;
  me.setAttribute("data-asthron-seen", "");
  const KEY = me.getAttribute("data-key") || "";
  // The API lives beside the script, wherever the app is mounted.
  const API = new URL(me.src, location.href).href.replace(/widget\.js([?#].*)?$/, "") + "widget/api/v1";
  const STORE = "asthron:" + KEY;
  const T = {
    open: "Chat with us", close: "Close chat", title: "Chat", send: "Send", input: "Your message",
    placeholder: "Type your message…", accept: "Accept and continue", privacy: "Privacy notice",
    typing: "…", failed: "Your message was not sent. Please try again.", you: "You",
    human: "A member of our team will reply here.",
  };
  const S = { id: null, token: null, lastId: 0, consent: null };
  let cfg, els, es, poll, opened, pending = null, owner = "ai", errors = 0;
  const seen = new Map();

  const load = () => { try { Object.assign(S, JSON.parse(localStorage.getItem(STORE)) || {}); } catch (e) { /* none */ } };
  const save = () => { try { localStorage.setItem(STORE, JSON.stringify(S)); } catch (e) { /* private mode */ } };

  async function api(path, body, method) {
    const headers = {};
    if (body) headers["Content-Type"] = "application/json";
    if (S.token) headers.Authorization = "Bearer " + S.token;
    const r = await fetch(API + path, { method: method || (body ? "POST" : "GET"), headers, credentials: "omit",
      body: body ? JSON.stringify(body) : undefined });
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw Object.assign(new Error((data.error && data.error.message) || "HTTP " + r.status), { status: r.status });
    return data;
  }

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const k in attrs || {}) node.setAttribute(k, attrs[k]);
    if (text != null) node.textContent = text;
    return node;
  }

  const CSS = `:host{all:initial}*{box-sizing:border-box;font:15px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
[hidden]{display:none!important}
.w{position:fixed;bottom:20px;z-index:2147483000;color:#1f2328}
.l{width:56px;height:56px;border-radius:50%;border:0;background:var(--c);color:var(--f);cursor:pointer;box-shadow:0 4px 14px #0004;display:grid;place-items:center}
.l svg{width:28px;height:28px;fill:currentColor}
.p{position:absolute;bottom:68px;width:370px;max-width:calc(100vw - 24px);height:540px;max-height:calc(100vh - 100px);background:#fff;border-radius:12px;box-shadow:0 8px 30px #0005;display:flex;flex-direction:column;overflow:hidden}
.r{right:20px}.r .p{right:0}.lf{left:20px}.lf .p{left:0}
header{background:var(--c);color:var(--f);padding:12px 14px;display:flex;align-items:center;justify-content:space-between;font-weight:600}
header button{background:none;border:0;color:inherit;font-size:24px;line-height:1;cursor:pointer;padding:2px 8px;border-radius:6px}
.m{flex:1;overflow-y:auto;padding:14px;display:flex;flex-direction:column;gap:8px}
.b{max-width:85%;padding:8px 12px;border-radius:12px;white-space:pre-wrap;overflow-wrap:anywhere;background:#f0f2f5;align-self:flex-start}
.b.visitor{background:var(--c);color:var(--f);align-self:flex-end}
.b.system,.e{align-self:center;background:none;color:#57606a;font-size:13px;text-align:center}
.e{color:#b42318}
.c{padding:12px 14px;border-top:1px solid #d0d7de;background:#f6f8fa}
.c p{margin:0 0 8px;white-space:pre-wrap}.c a{color:#0b57d0;display:inline-block;margin-bottom:10px}
.c button,form button{background:var(--c);color:var(--f);border:0;border-radius:8px;padding:9px 14px;cursor:pointer;font-weight:600}
form{display:flex;gap:8px;padding:10px;border-top:1px solid #d0d7de}
textarea{flex:1;resize:none;border:1px solid #8c959f;border-radius:8px;padding:8px;min-height:42px;max-height:120px;color:#1f2328;background:#fff}
textarea:disabled,form button:disabled{opacity:.55;cursor:not-allowed}
.v{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
:focus-visible{outline:3px solid #1f2328;outline-offset:2px;box-shadow:0 0 0 5px #fff}
@media (max-width:480px){.w .p{position:fixed;inset:0;width:100%;max-width:none;height:100%;max-height:none;border-radius:0}}`;

  function style(root) {
    try { const sheet = new CSSStyleSheet(); sheet.replaceSync(CSS); root.adoptedStyleSheets = [sheet]; }
    catch (e) { root.appendChild(el("style", {}, CSS)); } // older browsers
  }

  function icon() {
    const ns = "http://www.w3.org/2000/svg", svg = document.createElementNS(ns, "svg"), path = document.createElementNS(ns, "path");
    svg.setAttribute("viewBox", "0 0 24 24"); svg.setAttribute("aria-hidden", "true");
    path.setAttribute("d", "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z");
    svg.appendChild(path);
    return svg;
  }

  // Light text on dark colours, dark text on light ones.
  function ink(hex) {
    const n = parseInt(hex.slice(1), 16), lum = 0.299 * (n >> 16) + 0.587 * ((n >> 8) & 255) + 0.114 * (n & 255);
    return lum > 160 ? "#111" : "#fff";
  }

  function render() {
    const a = cfg.appearance || {}, colour = /^#[0-9a-f]{6}$/i.test(a.colour) ? a.colour : "#2563eb";
    Object.assign(T, a.strings || {});
    const host = el("div", { "data-asthron-widget": "" }), root = host.attachShadow({ mode: "open" });
    style(root);
    const name = a.assistant_name || T.title;
    const w = el("div", { class: "w " + (a.position === "left" ? "lf" : "r"), lang: a.language || "en" });
    w.style.setProperty("--c", colour); w.style.setProperty("--f", ink(colour));
    const launcher = el("button", { class: "l", type: "button", "aria-label": T.open, "aria-expanded": "false", "aria-controls": "p" });
    launcher.appendChild(icon());
    const panel = el("div", { class: "p", id: "p", role: "dialog", "aria-label": name, hidden: "" });
    const head = el("header"), closer = el("button", { type: "button", "aria-label": T.close }, "×");
    head.append(el("span", {}, name), closer);
    const list = el("div", { class: "m", role: "log", "aria-live": "polite", "aria-label": name });
    if (a.greeting) list.appendChild(el("div", { class: "b greeting" }, a.greeting));
    const form = el("form"), input = el("textarea", { id: "i", rows: "1", maxlength: "4000", placeholder: T.placeholder });
    const send = el("button", { type: "submit" }, T.send);
    form.append(el("label", { class: "v", for: "i" }, T.input), input, send);
    const consent = consentBox();
    panel.append(head, list, consent, form);
    w.append(panel, launcher);
    root.appendChild(w);
    document.body.appendChild(host);
    els = { launcher, panel, list, input, send, consent };
    launcher.addEventListener("click", () => (panel.hidden ? open() : close()));
    closer.addEventListener("click", close);
    w.addEventListener("keydown", (e) => { if (e.key === "Escape" && !panel.hidden) close(); });
    form.addEventListener("submit", (e) => { e.preventDefault(); submit(); });
    input.addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); submit(); } });
    gate();
  }

  function consentBox() {
    const c = cfg.consent || {}, box = el("div", { class: "c", hidden: "" });
    if (!c.required) return box;
    box.appendChild(el("p", {}, c.notice || ""));
    if (/^https?:\/\//i.test(c.privacy_url || "")) {
      box.appendChild(el("a", { href: c.privacy_url, target: "_blank", rel: "noopener noreferrer" }, T.privacy));
    }
    const ok = el("button", { type: "button" }, T.accept);
    ok.addEventListener("click", accept);
    box.appendChild(ok);
    return box;
  }

  const needsConsent = () => !!(cfg.consent && cfg.consent.required && S.consent !== cfg.consent.version);

  // The input stays disabled until the visitor has accepted the current notice.
  function gate() {
    const blocked = needsConsent();
    els.consent.hidden = !blocked;
    els.input.disabled = els.send.disabled = blocked;
  }

  function open() {
    els.panel.hidden = false;
    els.launcher.setAttribute("aria-expanded", "true");
    (needsConsent() ? els.consent.querySelector("button") : els.input).focus();
    els.list.scrollTop = els.list.scrollHeight;
    if (S.id) connect();
  }

  function close() {
    els.panel.hidden = true;
    els.launcher.setAttribute("aria-expanded", "false");
    els.launcher.focus();
  }

  async function start() {
    if (S.id) return;
    const c = await api("/conversations", { key: KEY });
    Object.assign(S, { id: c.id, token: c.token, lastId: 0, consent: null });
    owner = c.owner || "ai";
    save();
  }

  async function accept() {
    try {
      await start();
      await api("/conversations/" + S.id + "/consent", { notice_version: cfg.consent.version });
      S.consent = cfg.consent.version; save();
      gate(); els.input.focus(); connect();
    } catch (e) { notice(e.message); }
  }

  async function submit() {
    const text = els.input.value.trim();
    if (!text || els.send.disabled) return;
    els.send.disabled = true;
    try {
      if (!S.id) {
        await start();
        connect(); // listen before the first message so the reply's first tokens are not missed
        await Promise.race([opened, new Promise((r) => setTimeout(r, 1500))]);
      }
      const r = await api("/conversations/" + S.id + "/messages", { text });
      els.input.value = "";
      show(r.message);
      if (owner === "ai" && !pending) pending = bubble("assistant", T.typing);
      connect();
    } catch (e) {
      if (e.status === 404 || e.status === 401) forget();
      notice(e.status === 429 || e.status === 403 || e.status === 400 ? e.message : T.failed);
    } finally { gate(); els.input.focus(); }
  }

  function bubble(role, text) {
    const b = el("div", { class: "b " + role }, text);
    els.list.insertBefore(b, pending && role !== "assistant" ? pending : null);
    els.list.scrollTop = els.list.scrollHeight;
    return b;
  }

  function notice(text) { bubble("e", text); }

  // Each stored message shows once, however it arrives (POST answer, stream, replay, polling).
  function show(m) {
    if (!m || seen.has(m.id)) return;
    let b;
    if (m.role === "assistant" && pending) { b = pending; pending = null; b.textContent = m.text; }
    else b = bubble(m.role, m.text);
    if (m.role === "staff" && m.author) b.setAttribute("aria-label", m.author + ": " + m.text);
    seen.set(m.id, b);
    if (m.id > S.lastId) { S.lastId = m.id; save(); }
  }

  function token(d) {
    if (!pending) pending = bubble("assistant", "");
    if (pending.textContent === T.typing) pending.textContent = "";
    pending.textContent += d.text || "";
    els.list.scrollTop = els.list.scrollHeight;
  }

  function state(d) {
    if (d.owner && d.owner !== owner && d.owner !== "ai") bubble("system", T.human);
    owner = d.owner || owner;
  }

  function connect() {
    if (es || poll || !S.id) return;
    if (!window.EventSource) return fallback();
    es = new EventSource(API + "/conversations/" + encodeURIComponent(S.id) + "/stream?token=" +
      encodeURIComponent(S.token) + "&last_event_id=" + S.lastId);
    const on = (name, fn) => es.addEventListener(name, (e) => { try { fn(JSON.parse(e.data)); } catch (x) { /* bad event */ } });
    on("message", show); on("token", token); on("state", state);
    opened = new Promise((r) => { es.onopen = () => { errors = 0; r(); }; });
    // A planned close reconnects by itself; a refused or repeatedly failing stream falls back to polling.
    es.onerror = () => { if (es.readyState === 2 || ++errors > 3) { es.close(); es = null; fallback(); } };
  }

  function fallback() {
    if (poll) return;
    const tick = async () => {
      try { (await api("/conversations/" + S.id + "/messages?after=" + S.lastId)).messages.forEach(show); }
      catch (e) { if (e.status === 404 || e.status === 401) { clearInterval(poll); forget(); } }
    };
    poll = setInterval(tick, 2000);
    tick();
  }

  // The stored conversation is gone or its token no longer works: start afresh next time.
  function forget() {
    Object.assign(S, { id: null, token: null, lastId: 0, consent: null });
    try { localStorage.removeItem(STORE); } catch (e) { /* none */ }
    gate();
  }

  async function resume() {
    try {
      const c = await api("/conversations/" + S.id);
      owner = c.owner;
      S.consent = (c.consent && c.consent.accepted_version) || null;
      let after = 0, batch;
      do {
        batch = (await api("/conversations/" + S.id + "/messages?after=" + after)).messages;
        batch.forEach(show);
        if (batch.length) after = batch[batch.length - 1].id;
      } while (batch.length >= 100);
    } catch (e) { if (e.status === 404 || e.status === 401) forget(); }
    gate();
  }

  async function boot() {
    try { cfg = await api("/config?key=" + encodeURIComponent(KEY)); }
    catch (e) { console.warn("Asthron chat widget not shown: " + e.message); return; }
    load();
    render();
    if (S.id) await resume();
  }

  if (document.body) boot(); else document.addEventListener("DOMContentLoaded", boot);
})();
