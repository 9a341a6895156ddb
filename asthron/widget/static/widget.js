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

  async function api(path, body, method, extra) {
    const headers = Object.assign({}, extra);
    if (body) headers["Content-Type"] = "application/json";
    if (S.token) headers.Authorization = "Bearer " + S.token;
    const r = await fetch(API + path, { method: method || (body ? "POST" : "GET"), headers, credentials: "omit",
      body: body ? JSON.stringify(body) : undefined });
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw Object.assign(new Error((data.error && data.error.message) || "HTTP " + r.status), { status: r.status, fields: data.error && data.error.fields });
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
.h{padding:0 14px}.s{margin:4px 0;color:#57606a;font-size:13px}.s:empty{display:none}.a{display:block;font-size:12px;font-weight:600}
.h>button{background:none;border:1px solid var(--c);color:inherit;border-radius:8px;padding:4px 10px;cursor:pointer;font-size:13px}
input{flex:1;border:1px solid #8c959f;border-radius:8px;padding:8px;min-width:0}
.v{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
:focus-visible{outline:3px solid #1f2328;outline-offset:2px;box-shadow:0 0 0 5px #fff}
.q{flex-direction:column;overflow-y:auto;max-height:60%}.q input,.q select{flex:none}.q>[type=checkbox]{align-self:start}.q label{font-size:13px}.q .e{text-align:left;align-self:auto}
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
    panel.append(head, list, consent, handoffUi(), ...bookingUi(), leadUi(), form);
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
    els.input.disabled = els.send.disabled = H.ask.disabled = blocked;
    if (!blocked && !els.panel.hidden) askLead("start");
  }

  function open() {
    els.panel.hidden = false;
    els.launcher.setAttribute("aria-expanded", "true");
    (needsConsent() ? els.consent.querySelector("button") : els.input).focus();
    els.list.scrollTop = els.list.scrollHeight;
    if (S.id) connect();
    offerBooking();
    askLead("start");
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
    if (m.role === "staff" && m.author) { b.setAttribute("aria-label", m.author + ": " + m.text); b.prepend(el("span", { class: "a" }, m.author)); }
    seen.set(m.id, b);
    if (m.role === "assistant") askLead("after_reply");
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
    if (d.owner === "waiting") api("/conversations/" + S.id).then(hand, () => {}); else hand(d);
  }

  function connect() {
    if (es || poll || !S.id) return;
    if (!window.EventSource) return fallback();
    es = new EventSource(API + "/conversations/" + encodeURIComponent(S.id) + "/stream?token=" +
      encodeURIComponent(S.token) + "&last_event_id=" + S.lastId);
    const on = (name, fn) => es.addEventListener(name, (e) => { try { fn(JSON.parse(e.data)); } catch (x) { /* bad event */ } });
    on("message", show); on("token", token); on("state", state); on("lead_form", () => askLead());
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
      hand(c);
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

  // --- Handoff: "Talk to a person", who answers now, and an email address when nobody is available ---
  Object.assign(T, { person: "Talk to a person", with: "You are chatting with", email: "Your email", notify: "Email me",
    away: "Leave your email and we will send you our reply.", saved: "Thank you. We will email you our reply." });
  let H;
  function handoffUi() {
    const box = el("div", { class: "h" }), line = el("p", { class: "s", role: "status" });
    const ask = el("button", { type: "button" }, T.person), mail = el("form", { hidden: "" });
    const addr = el("input", { type: "email", required: "", maxlength: "254", placeholder: T.email, "aria-label": T.email });
    mail.append(addr, el("button", { type: "submit" }, T.notify));
    box.append(line, ask, mail);
    ask.addEventListener("click", async () => {
      try { await start(); connect(); hand(await api("/conversations/" + S.id + "/handoff", {})); } catch (e) { notice(e.message); }
    });
    mail.addEventListener("submit", async (e) => {
      e.preventDefault();
      try { await api("/conversations/" + S.id + "/email", { email: addr.value.trim() }); mail.hidden = true; line.textContent = T.saved; }
      catch (x) { notice(x.message); }
    });
    H = { line, ask, mail };
    return box;
  }

  // `c`: the conversation's owner, staff name, reply time and whether to ask for an email (docs/widget.md).
  function hand(c) {
    owner = c.owner || owner;
    H.ask.hidden = owner !== "ai";
    H.mail.hidden = !c.ask_email;
    H.line.textContent = owner === "human" && c.staff ? T.with + " " + c.staff :
      owner === "waiting" ? ((c.expected_reply || "") + (c.ask_email ? " " + T.away : "")).trim() : "";
  }

  // --- Booking: a "Book" button if the workspace offers services; widget-booking.js loads on first use ---
  T.book = "Book an appointment";
  let K;
  function bookingUi() {
    const wrap = el("div", { class: "h" }), btn = el("button", { type: "button", hidden: "" }, T.book), box = el("div", { hidden: "" });
    wrap.append(btn);
    btn.addEventListener("click", () => {
      if ((box.hidden = !box.hidden)) return;
      const go = () => window.AsthronBooking.open({ api, el, box, key: KEY, strings: T.booking, conversation: () => S });
      if (window.AsthronBooking) return go();
      const s = el("script", { src: API.replace(/widget\/api\/v1$/, "widget-booking.js") });
      s.onload = go; s.onerror = () => notice(T.failed);
      document.head.appendChild(s);
    });
    K = { btn };
    return [wrap, box];
  }
  async function offerBooking() {
    if (K.asked) return;
    K.asked = true;
    try { K.btn.hidden = !(await api("/services?key=" + encodeURIComponent(KEY))).services.length; } catch (e) { /* none */ }
  }

  // --- Leads: the workspace's lead form, at start, after the first reply, or when the assistant asks ---
  Object.assign(T, { details: "Your details", thanks: "Thank you! We will be in touch.", later: "Not now" });
  const L = {};
  function leadUi() {
    L.form = el("form", { class: "q", hidden: "", novalidate: "" });
    L.form.addEventListener("submit", (e) => { e.preventDefault(); sendLead(); });
    return L.form;
  }
  // `when` is the workspace's moment ("start", "after_reply"); without it the assistant asked.
  async function askLead(when) {
    if (L.busy || !L.form.hidden || (S.id && S.lead === S.id) || (when && (L.later || cfg.lead_form !== when)) || needsConsent()) return;
    L.busy = 1;
    try {
      await start();
      const d = await api("/conversations/" + S.id + "/lead-form");
      if (!(when && d.captured)) buildLead(d.fields);
    } catch (e) { /* the chat works without the form */ }
    L.busy = 0;
  }
  const KINDS = { email: "email", phone: "tel", number: "number", date: "date", checkbox: "checkbox" };
  function buildLead(fields) {
    const f = L.form;
    f.textContent = ""; L.in = {};
    f.append(el("p", { class: "s" }, T.details));
    for (const x of fields) {
      const id = "q_" + x.key, err = el("span", { class: "e", role: "alert" });
      let n;
      if (x.kind === "select") { n = el("select", { id }); n.append(el("option", { value: "" }, ""), ...x.options.map((o) => el("option", { value: o }, o))); }
      else if (x.kind === "multiselect") {
        n = el("div", { id, role: "group" });
        for (const o of x.options) { const l = el("label"), c = el("input", { type: "checkbox", value: o }); l.append(c, " " + o); n.append(l); }
      } else n = el("input", { id, type: KINDS[x.kind] || "text", step: "any" });
      L.in[x.key] = { k: x.kind, n, err };
      f.append(el("label", { for: id }, (x.question || x.label) + (x.required ? " *" : "")), n, el("span", { class: "s" }, x.help_text || ""), err);
    }
    const later = el("button", { type: "button" }, T.later);
    later.addEventListener("click", () => { f.hidden = true; L.later = 1; });
    f.append(el("button", { type: "submit" }, T.send), later);
    f.hidden = false;
  }
  async function sendLead() {
    const fields = {};
    for (const key in L.in) {
      const { k, n, err } = L.in[key];
      err.textContent = "";
      fields[key] = k === "checkbox" ? n.checked : k === "multiselect" ? [...n.querySelectorAll(":checked")].map((c) => c.value) : n.value.trim();
    }
    try {
      await api("/conversations/" + S.id + "/lead", { fields });
      L.form.hidden = true; S.lead = S.id; save();
      bubble("system", T.thanks);
    } catch (e) {
      if (!e.fields) return notice(e.message);
      for (const key in e.fields) (L.in[key] || { err: {} }).err.textContent = e.fields[key];
    }
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
