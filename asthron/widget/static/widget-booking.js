/* Asthron widget booking panel, loaded by widget.js when a visitor opens booking.
   Services -> day -> time (in the visitor's own time zone, from the Intl API) -> name and email -> booked.
   Every text is set with textContent, never as markup. */
(() => {
  "use strict";
  const T = {
    services: "What would you like to book?", day: "Choose a day", time: "Choose a time", none: "No free times in these days.",
    later: "Later days", back: "Back", name: "Your name", email: "Your email", book: "Book", booked: "Booked:",
    mail: "A confirmation email is on its way.", taken: "That time was just taken. Please choose another.",
    nothing: "Nothing can be booked right now.", inZone: "Times in", loading: "…",
  };
  const CSS = `.bk{padding:10px 14px;border-top:1px solid #d0d7de;max-height:60%;overflow-y:auto}
.bk h3{margin:0 0 8px;font-size:14px}.bk .g{display:flex;flex-wrap:wrap;gap:6px;margin-bottom:8px}
.bk .g button,.bk .n{background:#fff;border:1px solid var(--c);color:#1f2328;border-radius:8px;padding:5px 10px;cursor:pointer}
.bk .z{font-size:12px;color:#57606a;margin:0 0 6px}.bk form{padding:0;border:0;flex-direction:column}
.bk .ok{color:#1a7f37}.bk .er{color:#b42318}`;
  const zone = (() => { try { return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"; } catch (e) { return "UTC"; } })();
  const ymd = (d) => d.toISOString().slice(0, 10);
  // Slot times carry the visitor's offset: their date and clock time can be read from the text itself.
  const dayOf = (iso) => iso.slice(0, 10), clock = (iso) => iso.slice(11, 16);
  const dayLabel = (day) => {
    try { return new Date(day + "T12:00:00Z").toLocaleDateString(undefined, { weekday: "short", day: "numeric", month: "short", timeZone: "UTC" }); }
    catch (e) { return day; }
  };

  function open(ctx) {
    const { api, el, box, key } = ctx, P = Object.assign({}, T, ctx.strings || {});
    let service, first = new Date(), idem = null;
    box.textContent = "";
    const st = el("style", {}, CSS), body = el("div", { class: "bk", role: "region", "aria-label": P.services });
    box.append(st, body);

    const clear = (title) => { body.textContent = ""; if (title) body.appendChild(el("h3", {}, title)); };
    const say = (text, cls) => body.appendChild(el("p", cls ? { class: cls, role: "status" } : { class: "z" }, text));
    const button = (parent, text, fn, cls) => {
      const b = el("button", { type: "button", class: cls || "" }, text);
      b.addEventListener("click", fn); parent.appendChild(b); return b;
    };
    const fail = (e) => say(e.message, "er");

    async function services() {
      clear(P.services);
      try {
        const list = (await api("/services?key=" + encodeURIComponent(key))).services;
        if (!list.length) return say(P.nothing);
        const g = el("div", { class: "g" }); body.appendChild(g);
        list.forEach((s) => button(g, s.name + " · " + s.duration_minutes + " min" + (s.price ? " · " + s.price : ""),
          () => { service = s; first = new Date(); days(); }));
      } catch (e) { fail(e); }
    }

    async function days() {
      clear(service.name + ": " + P.day);
      say(P.inZone + " " + zone);
      try {
        const q = "/services/" + service.id + "/slots?key=" + encodeURIComponent(key) + "&start=" + ymd(first) +
          "&days=7&tz=" + encodeURIComponent(zone);
        const slots = (await api(q)).slots, byDay = new Map();
        slots.forEach((s) => { const d = dayOf(s.start); if (!byDay.has(d)) byDay.set(d, []); byDay.get(d).push(s); });
        const g = el("div", { class: "g" }); body.appendChild(g);
        byDay.forEach((list, d) => button(g, dayLabel(d), () => times(d, list)));
        if (!byDay.size) say(P.none);
        const nav = el("div", { class: "g" }); body.appendChild(nav);
        button(nav, P.back, services, "n");
        button(nav, P.later, () => { first = new Date(first.getTime() + 7 * 864e5); days(); }, "n");
      } catch (e) { fail(e); }
    }

    function times(day, list) {
      clear(service.name + ", " + dayLabel(day) + ": " + P.time);
      const g = el("div", { class: "g" }); body.appendChild(g);
      list.forEach((s) => button(g, clock(s.start), () => details(s)));
      button(body, P.back, days, "n");
    }

    function details(slot) {
      clear(service.name + ", " + dayLabel(dayOf(slot.start)) + " " + clock(slot.start));
      idem = idem || (self.crypto && crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2) + Date.now());
      const form = el("form"), name = el("input", { required: "", maxlength: "200", placeholder: P.name, "aria-label": P.name, autocomplete: "name" });
      const email = el("input", { type: "email", required: "", maxlength: "254", placeholder: P.email, "aria-label": P.email, autocomplete: "email" });
      const go = el("button", { type: "submit" }, P.book);
      form.append(name, email, go);
      body.appendChild(form);
      button(body, P.back, days, "n");
      form.addEventListener("submit", async (e) => {
        e.preventDefault();
        go.disabled = true;
        const conv = ctx.conversation() || {};
        const payload = { key, service_id: service.id, start: slot.start, name: name.value.trim(), email: email.value.trim(), tz: zone };
        if (conv.id) payload.conversation_id = conv.id;
        try {
          const b = (await api("/bookings", payload, "POST", { "Idempotency-Key": idem })).booking;
          idem = null;
          clear();
          say(P.booked + " " + b.service.name + ", " + dayLabel(dayOf(b.start)) + " " + clock(b.start) + " (" + zone + ")", "ok");
          say(P.mail);
        } catch (x) {
          go.disabled = false;
          if (x.status === 409) { idem = null; say(P.taken, "er"); setTimeout(days, 1500); }
          else if (x.status === 422) { idem = null; fail(x); }
          else fail(x);
        }
      });
      name.focus();
    }

    services();
  }

  window.AsthronBooking = { open };
})();
