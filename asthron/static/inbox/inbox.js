/* The staff inbox, live: new conversations and messages appear without a reload (server-sent events,
   polling every 3 s when the stream fails); replies, notes and actions are sent with fetch. Every text
   is set with textContent, never as markup: visitor text stays text. */
(() => {
  "use strict";
  const root = document.getElementById("inbox");
  if (!root) return;
  const cfg = root.dataset;
  const list = document.getElementById("inbox-list");
  const transcript = document.getElementById("inbox-transcript");
  const errorBox = document.getElementById("inbox-error");
  let lastId = Number(cfg.lastId) || 0, listTimer = null, poll = null;

  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const k in attrs || {}) node.setAttribute(k, attrs[k]);
    if (text != null) node.textContent = text;
    return node;
  }

  async function send(url, method, body) {
    const headers = { Accept: "application/json", "X-CSRFToken": cfg.csrf };
    if (body) headers["Content-Type"] = "application/json";
    const r = await fetch(url, { method, headers, credentials: "same-origin", body: body ? JSON.stringify(body) : undefined });
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw Object.assign(new Error(data.error || "The request failed (" + r.status + ")."), { data });
    return data;
  }
  const getJSON = (url) => send(url, "GET");

  function showError(text) {
    if (!errorBox) return;
    errorBox.textContent = text || "";
    errorBox.hidden = !text;
  }

  function renderList(data) {
    for (const tab in data.counts) {
      const badge = root.querySelector('[data-count="' + tab + '"]');
      if (badge) badge.textContent = data.counts[tab];
    }
    const items = data.conversations.map((c) => {
      const li = el("li", { class: "list-group-item" + (c.id === cfg.conversation ? " active" : ""), "data-id": c.id });
      const a = el("a", { href: c.url + location.search });
      a.append(el("strong", {}, c.workspace), " · " + c.owner + (c.assignee ? " (" + c.assignee + ")" : ""),
        el("div", { class: "inbox-preview" }, c.preview || ""));
      li.appendChild(a);
      return li;
    });
    list.replaceChildren(...(items.length ? items : [el("li", { class: "list-group-item text-muted inbox-empty" }, "No conversations here.")]));
  }

  function refreshList() {
    clearTimeout(listTimer);
    listTimer = setTimeout(() => getJSON(cfg.listUrl).then(renderList).catch(() => {}), 250);
  }

  const LABELS = { visitor: "Visitor", assistant: "Assistant", staff: "Staff", system: "System", note: "Internal note" };

  function append(m) {
    if (!transcript || !m || m.id <= lastId) return;
    const li = el("li", { class: "inbox-message inbox-" + m.role, "data-id": m.id });
    li.style.marginBottom = "0.6em";
    if (m.role === "note") { li.style.background = "#fff8c5"; li.style.padding = "4px"; }
    li.append(el("strong", {}, (LABELS[m.role] || m.role) + (m.author ? " (" + m.author + ")" : "")), " ",
      el("small", { class: "text-muted" }, (m.time || "").slice(0, 16).replace("T", " ")));
    const text = el("div", { class: "inbox-text" }, m.text);
    text.style.whiteSpace = "pre-wrap";
    li.appendChild(text);
    transcript.appendChild(li);
    transcript.scrollTop = transcript.scrollHeight;
    lastId = m.id;
  }

  function header(c) {
    const owner = document.getElementById("inbox-owner"), who = document.getElementById("inbox-assignee");
    if (owner) owner.textContent = c.owner;
    if (who) who.textContent = c.assignee || "";
    root.querySelectorAll(".inbox-action").forEach((f) => { f.hidden = !f.dataset.owners.split(" ").includes(c.owner); });
  }

  async function refreshConversation() {
    if (!cfg.conversationUrl) return;
    const data = await getJSON(cfg.conversationUrl + "?after=" + lastId);
    data.messages.forEach(append);
    header(data.conversation);
  }

  function fallback() {
    if (poll) return;
    poll = setInterval(() => { refreshList(); refreshConversation().catch(() => {}); }, 3000);
  }

  function connect() {
    if (!window.EventSource) return fallback();
    const es = new EventSource(cfg.streamUrl);
    let errors = 0;
    es.onopen = () => { errors = 0; };
    es.addEventListener("message", (e) => {
      const d = JSON.parse(e.data);
      refreshList();
      if (d.conversation_id === cfg.conversation) append(d.message);
    });
    es.addEventListener("conversation", (e) => {
      const d = JSON.parse(e.data);
      refreshList();
      if (d.conversation_id === cfg.conversation) refreshConversation().catch(() => {});
    });
    // A planned close reconnects by itself; a refused or repeatedly failing stream falls back to polling.
    es.onerror = () => { if (es.readyState === 2 || ++errors > 3) { es.close(); fallback(); } };
  }

  // Replies and notes: sent without leaving the page; the stored message comes back in the answer.
  root.querySelectorAll("form.inbox-write").forEach((form) => {
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const box = form.querySelector("textarea"), button = form.querySelector("button[type=submit]");
      button.disabled = true;
      try {
        const data = await send(form.action, "POST", { text: box.value });
        box.value = "";
        showError("");
        append(data.message);
        header(data.conversation);
      } catch (err) { showError(err.message); }
      finally { button.disabled = false; }
    });
  });

  // Take, assign, hand back, close, reopen: the answer is the conversation's new state (409 names who has it).
  root.querySelectorAll("form.inbox-action").forEach((form) => {
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const select = form.querySelector("select");
      try {
        const data = await send(form.action, "POST", select ? { user_id: select.value } : {});
        showError("");
        header(data.conversation);
        await refreshConversation();
        refreshList();
      } catch (err) { showError(err.message); }
    });
  });

  const canned = document.getElementById("inbox-canned");
  if (canned) canned.addEventListener("change", () => {
    const option = canned.selectedOptions[0], box = document.getElementById("inbox-reply-text");
    if (option && option.dataset.body && box) { box.value = option.dataset.body; box.focus(); }
  });

  if (transcript) transcript.scrollTop = transcript.scrollHeight;
  connect();
})();
