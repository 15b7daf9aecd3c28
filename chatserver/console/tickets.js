/* chatserver agent console: the Tickets view (docs/protocol.md, "Tickets"). Plain JS, no build step.
 *
 * console.js owns the session and the WebSocket; it calls ChatTickets.start(host) after login, stop() at
 * logout, frame(f) for `ticket`, `sla` and `message.status` frames, and hide() when a conversation opens.
 * The list (GET /api/v1/tickets?sort=due) follows `ticket` frames live; the detail (GET
 * /api/v1/tickets/{number}) changes a ticket with the `version` it shows (a 409 with `data.ticket` means
 * someone else changed it first: the console says so and shows the current ticket). `sla` frames raise a
 * toast and a badge on the Tickets entry. User content is only ever set with textContent.
 */
(() => {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const OPENISH = ["new", "open", "pending", "on_hold"];
  const STATUSES = ["new", "open", "pending", "on_hold", "solved", "closed"];
  const PRIORITIES = ["low", "normal", "high", "urgent"];
  // the state machine of chatserver/tickets/status.py (the server decides; this only offers the legal moves)
  const LEGAL = {
    new: ["open", "pending", "on_hold", "solved"],
    open: ["pending", "on_hold", "solved"],
    pending: ["open", "on_hold", "solved"],
    on_hold: ["open", "pending", "solved"],
    solved: ["open", "closed"],
    closed: []
  };
  const PAGE = 50;

  let host = null; // {api, request, el, toast, me(), agentName(id), selected(), restore()}
  let items = []; // tickets in the list, sorted by due time
  let cursor = null;
  let listGen = 0;
  let current = null; // the open ticket (full: with thread and audit)
  let alarms = 0;
  const contacts = new Map(); // requester id -> name (or a promise of it)
  const fieldLabels = new Map(); // custom field key -> label
  let fieldDefs = []; // the admin-defined custom fields: {key, label, type, options, required}

  const label = (s) => String(s || "").replace(/_/g, " ");
  const el = (...a) => host.el(...a);

  function relTime(ms) {
    if (ms == null) return "—";
    const s = Math.round((ms - Date.now()) / 1000);
    const a = Math.abs(s);
    const span = a < 60 ? a + " s" : a < 3600 ? Math.round(a / 60) + " min" : a < 86400
      ? Math.round(a / 3600) + " h" : Math.round(a / 86400) + " d";
    return s >= 0 ? "in " + span : span + " ago";
  }
  function fmtAt(ms) {
    const t = new Date(ms);
    return isNaN(t) ? "" : t.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  }

  /** The soonest due time among the targets still running, and whether any target is breached. */
  function due(t) {
    const targets = (t.sla && t.sla.targets) || {};
    let at = null;
    for (const k in targets) {
      const x = targets[k];
      if (!x || x.met_at != null || x.due_at == null) continue;
      if (at == null || x.due_at < at) at = x.due_at;
    }
    return { at, breached: !!(t.sla && t.sla.breached) };
  }
  const byDue = (a, b) => {
    const x = due(a).at;
    const y = due(b).at;
    if (x != null && y != null && x !== y) return x - y;
    if ((x == null) !== (y == null)) return x == null ? 1 : -1;
    return a.number - b.number;
  };

  function assigneeName(id) {
    if (!id) return "Unassigned";
    const me = host.me();
    if (me && id === me.id) return "Me";
    return host.agentName(id) || "An agent";
  }

  function requesterName(id, node) {
    const known = contacts.get(id);
    if (typeof known === "string") {
      node.textContent = known;
      return;
    }
    node.textContent = "…";
    const ask = known || host.api("GET", "/api/v1/contacts/" + encodeURIComponent(id)).then((r) => {
      const name = r.ok ? r.data.name || r.data.email || "Contact" : "Contact";
      contacts.set(id, name);
      return name;
    });
    contacts.set(id, ask);
    ask.then((name) => { node.textContent = name; });
  }

  // -- the view ------------------------------------------------------------------------------------------
  function open() {
    setAlarms(0);
    $("tickets-nav").setAttribute("aria-current", "page");
    $("placeholder").hidden = true;
    $("conv").hidden = true;
    $("tickets-view").hidden = false;
    loadList(true);
  }
  function hide() {
    if (!host || $("tickets-view").hidden) return;
    $("tickets-view").hidden = true;
    $("tickets-nav").removeAttribute("aria-current");
    current = null;
    $("ticket").hidden = true;
  }

  function filters() {
    const q = new URLSearchParams({ sort: "due", limit: String(PAGE) });
    const status = $("tf-status").value;
    q.set("status", status === "openish" ? OPENISH.join(",") : status === "all" ? STATUSES.join(",") : status);
    if ($("tf-mine").checked && host.me()) q.set("assignee", host.me().id);
    if ($("tf-breached").checked) q.set("breached", "true");
    return q;
  }
  function matches(t) {
    const status = $("tf-status").value;
    const set = status === "openish" ? OPENISH : status === "all" ? STATUSES : [status];
    if (!set.includes(t.status)) return false;
    if ($("tf-mine").checked && (!host.me() || t.assignee_id !== host.me().id)) return false;
    if ($("tf-breached").checked && !(t.sla && t.sla.breached)) return false;
    return true;
  }

  async function loadList(fresh) {
    const gen = fresh ? ++listGen : listGen;
    const q = filters();
    if (!fresh && cursor) q.set("cursor", cursor);
    $("tl-more").disabled = true;
    const r = await host.api("GET", "/api/v1/tickets?" + q.toString());
    if (gen !== listGen || !host) return;
    if (!r.ok) {
      $("tl-more").disabled = false;
      return host.toast("Could not load the tickets: " + r.error.message);
    }
    if (fresh) items = [];
    for (const t of r.data.items) upsert(t, false);
    cursor = r.data.next_cursor || null;
    renderList();
  }

  function upsert(t, live) {
    const i = items.findIndex((x) => x.number === t.number);
    if (i >= 0 && items[i].version > t.version) return;
    if (i >= 0) items.splice(i, 1);
    if (matches(t)) items.push(t);
    if (live) items.sort(byDue);
  }

  function renderList() {
    const tbody = $("tl-rows");
    tbody.textContent = "";
    for (const t of items) {
      const d = due(t);
      const requester = el("td", { class: "tl-requester" });
      requesterName(t.requester_id, requester);
      const tr = el("tr", { "data-number": String(t.number), class: current && current.number === t.number ? "sel" : null }, [
        el("td", { class: "tl-number" }, [
          el("button", { type: "button", class: "link", text: "#" + t.number, onclick: () => openTicket(t.number) })
        ]),
        el("td", { class: "tl-subject", text: t.subject }),
        requester,
        el("td", {}, [el("span", { class: "pill t-" + t.status, text: label(t.status) })]),
        el("td", { class: "tl-priority p-" + t.priority, text: t.priority }),
        el("td", { class: "tl-assignee", text: assigneeName(t.assignee_id) }),
        el("td", { class: "tl-due" + (d.breached ? " breached" : ""), title: d.at ? fmtAt(d.at) : null,
          text: d.breached ? "Breached" + (d.at ? " · " + relTime(d.at) : "") : relTime(d.at) })
      ]);
      tbody.appendChild(tr);
    }
    $("tl-empty").hidden = items.length > 0;
    $("tl-more").hidden = !cursor;
    $("tl-more").disabled = false;
  }

  // -- one ticket -----------------------------------------------------------------------------------------
  async function openTicket(number) {
    if ($("tickets-view").hidden) open();
    const r = await host.api("GET", "/api/v1/tickets/" + encodeURIComponent(number));
    if (!r.ok) return host.toast("Could not open ticket #" + number + ": " + r.error.message);
    showTicket(r.data);
  }

  function showTicket(t) {
    current = t;
    $("ticket").hidden = false;
    $("td-conflict").hidden = true;
    $("td-error").hidden = true;
    renderTicket();
    for (const tr of $("tl-rows").children) tr.classList.toggle("sel", tr.dataset.number === String(t.number));
  }

  function options(sel, values, value, names) {
    sel.textContent = "";
    for (const v of values) sel.appendChild(el("option", { value: v, text: names ? names(v) : label(v) }));
    sel.value = value;
  }

  function renderTicket() {
    const t = current;
    $("td-title").textContent = "#" + t.number + " " + t.subject;
    $("td-subject").value = t.subject;
    options($("td-status"), [t.status, ...LEGAL[t.status]], t.status);
    options($("td-priority"), PRIORITIES, t.priority);
    const me = host.me();
    const who = [""];
    if (me) who.push(me.id);
    if (t.assignee_id && !who.includes(t.assignee_id)) who.push(t.assignee_id);
    options($("td-assignee"), who, t.assignee_id || "", (v) => (v ? assigneeName(v) : "Unassigned"));
    $("td-tags").value = (t.tags || []).join(", ");
    requesterName(t.requester_id, $("td-requester"));
    const d = due(t);
    const sla = $("td-sla");
    sla.textContent = t.sla ? (d.breached ? "Breached" : "Due") + (d.at ? " " + relTime(d.at) : "") + " · " + (t.sla.policy || "") : "No SLA";
    sla.className = d.breached ? "breached" : "";
    const facts = $("td-facts");
    facts.textContent = "";
    const rows = [["Created", fmtAt(t.created_at)], ["Updated", fmtAt(t.updated_at)]];
    if (t.merged_into) rows.push(["Merged into", "#" + t.merged_into]);
    if (t.parent_number) rows.push(["Follows up", "#" + t.parent_number]);
    if (t.email_note) rows.push(["Email", t.email_note]);
    for (const k in t.fields || {}) if (!fieldDefs.some((d) => d.key === k)) rows.push([fieldLabels.get(k) || k, String(t.fields[k])]);
    if (t.csat) rows.push(["Rating", t.csat.score + "/5" + (t.csat.comment ? ": " + t.csat.comment : "")]);
    for (const [k, v] of rows) {
      facts.appendChild(el("dt", { text: k }));
      facts.appendChild(el("dd", { text: v }));
    }
    renderFields(t);
    renderThread();
    const audit = $("td-audit");
    audit.textContent = "";
    for (const a of t.audit || []) {
      const val = (x) => (x == null || x === "" ? "—" : Array.isArray(x) ? x.join(", ") : typeof x === "object" ? JSON.stringify(x) : a.field === "status" ? label(x) : String(x));
      audit.appendChild(el("li", {}, [
        el("time", { text: fmtAt(a.at) }),
        el("span", { text: " " + ((a.actor && a.actor.name) || "System") + " changed " + label(a.field) + " from " + val(a.from) + " to " + val(a.to) })
      ]));
    }
    const closed = t.status === "closed";
    for (const id of ["td-save", "td-reply-send", "td-subject", "td-status", "td-priority", "td-assignee", "td-tags"]) $(id).disabled = closed;
  }

  // -- custom fields and merge (built here, so the page's HTML stays the console's) ----------------------
  function extras() {
    let box = $("td-extras");
    if (box) return box;
    box = el("div", { id: "td-extras", class: "td-form" });
    $("td-facts").after(box);
    const merge = el("form", { id: "td-merge-form", class: "td-form", novalidate: "" }, [
      el("label", { for: "td-merge-into", text: "Merge into #" }),
      el("input", { id: "td-merge-into", type: "number", min: "1", inputmode: "numeric", placeholder: "ticket number" }),
      el("span"),
      el("button", { id: "td-merge", class: "btn small", type: "submit", text: "Merge" })
    ]);
    box.after(merge);
    merge.addEventListener("submit", mergeInto);
    return box;
  }

  function fieldInput(d, value) {
    const id = "tdf-" + d.key;
    if (d.type === "dropdown") {
      const sel = el("select", { id, "data-key": d.key });
      sel.appendChild(el("option", { value: "", text: "—" }));
      for (const o of d.options || []) sel.appendChild(el("option", { value: o, text: o }));
      sel.value = value == null ? "" : String(value);
      return sel;
    }
    if (d.type === "checkbox") {
      const box = el("input", { id, type: "checkbox", "data-key": d.key });
      box.checked = value === true;
      return box;
    }
    const type = d.type === "number" ? "number" : d.type === "date" ? "date" : "text";
    const input = el("input", { id, type, "data-key": d.key });
    input.value = value == null ? "" : String(value);
    return input;
  }

  function renderFields(t) {
    const box = extras();
    box.textContent = "";
    for (const d of fieldDefs) {
      box.appendChild(el("label", { for: "tdf-" + d.key, text: d.label + (d.required ? " *" : "") }));
      box.appendChild(fieldInput(d, (t.fields || {})[d.key]));
    }
    box.hidden = !fieldDefs.length;
    const closed = t.status === "closed" || !!t.merged_into;
    for (const node of box.querySelectorAll("input, select")) node.disabled = t.status === "closed";
    $("td-merge-into").disabled = closed;
    $("td-merge").disabled = closed;
    $("td-merge-into").value = "";
  }

  function fieldValue(d, node) {
    if (d.type === "checkbox") return node.checked;
    const raw = node.value.trim();
    if (raw === "") return null;
    if (d.type === "number") return Number(raw);
    return raw;
  }

  function collectFields(t) {
    const out = {};
    for (const d of fieldDefs) {
      const node = $("tdf-" + d.key);
      if (!node) continue;
      const value = fieldValue(d, node);
      const was = (t.fields || {})[d.key];
      if (d.type === "checkbox" && value === false && was == null) continue;
      if (value !== (was == null ? null : was)) out[d.key] = value;
    }
    return out;
  }

  async function mergeInto(e) {
    e.preventDefault();
    const t = current;
    const into = parseInt($("td-merge-into").value, 10);
    if (!t || !into) return;
    $("td-error").hidden = true;
    $("td-merge").disabled = true;
    const r = await host.api("POST", "/api/v1/tickets/" + t.number + "/merge", { into });
    $("td-merge").disabled = false;
    if (!r.ok) {
      $("td-error").textContent = "Could not merge: " + r.error.message;
      $("td-error").hidden = false;
      return;
    }
    upsert(r.data.merged, true);
    upsert(r.data.into, true);
    renderList();
    host.toast("#" + t.number + " merged into #" + r.data.into.number);
    await openTicket(r.data.into.number);
  }

  function renderThread() {
    const log = $("td-thread");
    log.textContent = "";
    for (const m of current.thread || []) {
      const note = m.kind === "note";
      const who = (m.author && m.author.name) || (m.author && m.author.kind) || "";
      const kids = [
        el("div", { class: "tm-head" }, [
          el("span", { class: "tm-who", text: who }),
          note ? el("span", { class: "tm-tag", text: "Internal note" }) : null,
          el("time", { text: fmtAt(Date.parse(m.created_at) || m.created_at) })
        ]),
        el("p", { class: "tm-text", text: m.text })
      ];
      for (const d of m.deliveries || []) {
        kids.push(el("p", { class: "tm-delivery " + d.state, text: label(d.kind) + ": " + label(d.state) + (d.reason ? " (" + d.reason + ")" : "") }));
      }
      log.appendChild(el("li", { class: "tm " + (m.kind || "text") + (m.author ? " by-" + m.author.kind : ""), "data-id": m.id }, kids));
    }
  }

  async function save(changes) {
    const t = current;
    const r = await host.api("PATCH", "/api/v1/tickets/" + t.number, Object.assign({ version: t.version }, changes));
    if (current !== t) return;
    if (r.ok) {
      showTicket(r.data);
      upsert(r.data, true);
      renderList();
      return;
    }
    const stale = r.status === 409 && r.error.data && r.error.data.ticket;
    if (stale) {
      // someone else changed it first: show theirs (with thread and audit), and say so
      const fresh = await host.api("GET", "/api/v1/tickets/" + t.number);
      showTicket(fresh.ok ? fresh.data : Object.assign({}, t, r.error.data.ticket));
      $("td-conflict").hidden = false;
      return;
    }
    renderTicket();
    $("td-error").textContent = r.error.message;
    $("td-error").hidden = false;
  }

  function collect() {
    const t = current;
    const out = {};
    const subject = $("td-subject").value.trim();
    if (subject && subject !== t.subject) out.subject = subject;
    if ($("td-status").value !== t.status) out.status = $("td-status").value;
    if ($("td-priority").value !== t.priority) out.priority = $("td-priority").value;
    const who = $("td-assignee").value || null;
    if (who !== (t.assignee_id || null)) out.assignee_id = who;
    const tags = $("td-tags").value.split(",").map((s) => s.trim()).filter(Boolean);
    if (tags.join(",") !== (t.tags || []).join(",")) out.tags = tags;
    const fields = collectFields(t);
    if (Object.keys(fields).length) out.fields = fields;
    return out;
  }

  async function reply(e) {
    e.preventDefault();
    const box = $("td-reply");
    const text = box.value.trim();
    if (!text || !current) return;
    const t = current;
    const priv = $("td-private").checked;
    $("td-reply-send").disabled = true;
    const r = await host.api("POST", "/api/v1/tickets/" + t.number + "/replies", { text, private: priv });
    $("td-reply-send").disabled = false;
    if (!r.ok) {
      $("td-error").textContent = "Could not send: " + r.error.message;
      $("td-error").hidden = false;
      return;
    }
    box.value = "";
    if (current !== t) return;
    const fresh = await host.api("GET", "/api/v1/tickets/" + t.number);
    if (fresh.ok && current === t) showTicket(fresh.data);
  }

  // -- frames ---------------------------------------------------------------------------------------------
  function setAlarms(n) {
    alarms = n;
    const b = $("tickets-badge");
    b.textContent = n ? String(n) : "";
    b.hidden = !n;
  }

  function onTicket(t) {
    if (!t || t.number == null) return;
    upsert(t, true);
    if (!$("tickets-view").hidden) renderList();
    // a colleague changed the open ticket: show it, unless the agent is editing (saving then says so)
    if (current && current.number === t.number && t.version > current.version && !Object.keys(collect()).length) {
      // keep the thread and audit we hold, then fetch the full ticket
      current = Object.assign({}, current, t);
      renderTicket();
      host.api("GET", "/api/v1/tickets/" + t.number).then((r) => {
        const editing = current && Object.keys(collect()).length;
        if (r.ok && current && !editing && current.number === r.data.number && r.data.version >= current.version) {
          current = r.data;
          renderTicket();
        }
      });
    }
  }

  function onSla(f) {
    const t = f.ticket || {};
    onTicket(t);
    const what = label(f.target);
    const text = f.kind === "breach"
      ? "SLA breached: #" + t.number + " " + what + " was due " + relTime(f.due_at)
      : "SLA warning: #" + t.number + " " + what + " due " + relTime(f.due_at);
    host.toast(text);
    if ($("tickets-view").hidden) setAlarms(alarms + 1);
  }

  function onStatus(f) {
    if (!current) return;
    const m = (current.thread || []).find((x) => x.id === f.message_id);
    if (!m) return;
    const list = m.deliveries || (m.deliveries = []);
    const d = list.find((x) => x.kind === f.kind);
    if (d) Object.assign(d, { state: f.state, reason: f.reason || null });
    else list.push({ kind: f.kind, state: f.state, reason: f.reason || null });
    renderThread();
  }

  // -- escalation (from an open conversation) -----------------------------------------------------------------
  function escalatePriority() {
    if ($("escalate-priority")) return;
    const sel = el("select", { id: "escalate-priority", "aria-label": "Escalate as" });
    for (const p of PRIORITIES) sel.appendChild(el("option", { value: p, text: label(p) }));
    sel.value = "normal";
    $("escalate-go").before(sel);
  }

  function toggleEscalate(on) {
    if (on && host) escalatePriority();
    $("escalate-form").hidden = !on;
    $("escalate").setAttribute("aria-expanded", on ? "true" : "false");
    $("escalate-error").hidden = true;
    if (on) $("escalate-subject").focus();
  }

  async function escalate(e) {
    e.preventDefault();
    const cid = host.selected();
    if (!cid) return;
    const frame = { type: "conversation.escalate", conversation_id: cid };
    const subject = $("escalate-subject").value.trim();
    if (subject) frame.subject = subject;
    const priority = $("escalate-priority") && $("escalate-priority").value;
    if (priority) frame.priority = priority;
    $("escalate-go").disabled = true;
    try {
      const ack = await host.request(frame);
      $("escalate-subject").value = "";
      toggleEscalate(false);
      await openTicket(ack.ticket.number);
    } catch (err) {
      $("escalate-error").textContent = err.message || "Could not escalate.";
      $("escalate-error").hidden = false;
    } finally {
      $("escalate-go").disabled = false;
    }
  }

  // -- wiring ---------------------------------------------------------------------------------------------
  let wired = false;
  function wire() {
    if (wired) return;
    wired = true;
    $("tickets-nav").addEventListener("click", () => { host.clearSelection(); open(); });
    for (const id of ["tf-status", "tf-mine", "tf-breached"]) $(id).addEventListener("change", () => loadList(true));
    $("tl-more").addEventListener("click", () => loadList(false));
    $("td-save").addEventListener("click", () => {
      $("td-conflict").hidden = true;
      $("td-error").hidden = true;
      const changes = collect();
      if (Object.keys(changes).length) save(changes);
    });
    $("td-close").addEventListener("click", () => { current = null; $("ticket").hidden = true; renderList(); });
    $("td-reply-form").addEventListener("submit", reply);
    $("td-private").addEventListener("change", () => {
      const priv = $("td-private").checked;
      $("td-reply-form").classList.toggle("note-mode", priv);
      $("td-reply-send").textContent = priv ? "Add note" : "Send reply";
    });
    $("escalate").addEventListener("click", () => toggleEscalate($("escalate-form").hidden));
    $("escalate-cancel").addEventListener("click", () => toggleEscalate(false));
    $("escalate-form").addEventListener("submit", escalate);
    setInterval(() => { if (host && !$("tickets-view").hidden) renderList(); }, 30000);
  }

  window.ChatTickets = {
    start(h) {
      host = h;
      wire();
      host.api("GET", "/api/v1/ticket-fields").then((r) => {
        if (!r.ok) return;
        fieldDefs = r.data.items;
        for (const d of r.data.items) fieldLabels.set(d.key, d.label);
        if (current) renderFields(current);
      });
    },
    stop() {
      hide();
      host = null;
      items = [];
      cursor = null;
      current = null;
      contacts.clear();
      fieldLabels.clear();
      fieldDefs = [];
      setAlarms(0);
      toggleEscalate(false);
      $("tl-rows").textContent = "";
    },
    hide,
    frame(f) {
      if (!host) return;
      if (f.type === "ticket") onTicket(f.ticket);
      else if (f.type === "sla") onSla(f);
      else if (f.type === "message.status") onStatus(f);
    },
    conversationChanged() { toggleEscalate(false); }
  };
})();
