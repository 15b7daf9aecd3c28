/* chatserver agent console: the open conversation: history, messages, translations, typing, the composer (see console.js). */
"use strict";

// -- the open conversation --------------------------------------------------------------------------------
async function select(id) {
  if (!convs.has(id)) {
    const r = await api("GET", "/api/v1/conversations/" + encodeURIComponent(id));
    if (!r.ok) {
      if (r.status === 404) history.replaceState(null, "", location.pathname);
      return toast("Could not open the conversation: " + r.error.message);
    }
    if (!convs.has(id)) convs.set(id, r.data);
  }
  if (location.hash.slice(1) !== id) history.replaceState(null, "", "#" + id);
  if (window.ChatTickets) window.ChatTickets.hide();
  if (selected !== id) {
    if (window.ChatTickets) window.ChatTickets.conversationChanged();
    stopTyping();
    selected = id;
    unread.delete(id);
    $("reply").value = "";
    $("private").checked = false;
    delete $("private").dataset.forced;
    closePicker();
    hideDraft();
    closeHandoff(false);
    renderLists();
    show($("placeholder"), false);
    show($("conv"), true);
    hideTyping();
    renderHeader();
    renderLog();
  }
  if (!loaded.has(id)) await loadConversation(id);
  markRead();
}

async function loadConversation(id) {
  if (loading.has(id)) return;
  loading.add(id);
  try {
    // follow first, then read the history: nothing committed in between can be missed
    await request({ type: "conversation.view", conversation_id: id });
    let after = 0;
    for (;;) {
      const r = await api("GET", "/api/v1/conversations/" + encodeURIComponent(id) + "/messages?after=" + after + "&limit=" + PAGE);
      if (!r.ok) throw r.error;
      for (const m of r.data.items) addMessage(id, m, false);
      if (r.data.items.length < PAGE) break;
      after = r.data.items[r.data.items.length - 1].seq;
    }
    loaded.add(id);
    if (id === selected) {
      renderLog();
      markRead();
    }
  } catch (err) {
    if (err.code !== "disconnected") toast("Could not load the conversation: " + err.message);
  } finally {
    loading.delete(id);
  }
}

function lastSeq(id) {
  const list = msgs.get(id);
  return list && list.length ? list[list.length - 1].seq : 0;
}

function addMessage(cid, m, live) {
  let list = msgs.get(cid);
  if (!list) msgs.set(cid, (list = []));
  if (m.client_id && pending.has(m.client_id) && isMe(m.author)) {
    pending.delete(m.client_id);
    const node = msgNodes.get("p" + m.client_id);
    if (node) {
      node.remove();
      msgNodes.delete("p" + m.client_id);
    }
  }
  const old = list.find((x) => x.seq === m.seq);
  if (old) {
    // seen again (history after the live frame, or a resume): it may carry newer translations
    if (mergeTr(old, m.translations, m.untranslated) && cid === selected) repaintMsg(old);
    return;
  }
  const msg = {
    seq: m.seq, id: m.id, kind: m.kind, text: m.text, author: m.author, created_at: m.created_at, client_id: m.client_id,
    lang: m.lang || null, translations: {}, untranslated: {}, attachments: m.attachments || []
  };
  rememberDeliveries(m);
  mergeTr(msg, m.translations, m.untranslated);
  if (list.length && list[list.length - 1].seq > m.seq) {
    list.push(msg);
    list.sort((a, b) => a.seq - b.seq);
  } else list.push(msg);
  if (cid === selected && loaded.has(cid)) {
    const stick = nearBottom() || isMe(m.author);
    insertNode(msgNode(msg), msg.seq, "s" + msg.seq);
    updateReceipt();
    if (m.author && m.author.kind === "contact") hideTyping();
    if (stick) scrollBottom();
    markRead();
  } else if (live && convs.has(cid) && !isMe(m.author) && m.kind !== "event") {
    unread.add(cid);
  }
  for (const o of offers.values()) if (o.cid === cid) renderOffer(o);
  if (live) renderLists();
}

function renderHeader() {
  const c = convs.get(selected);
  if (!c) return;
  const name = (c.contact && c.contact.name) || "Visitor";
  $("conv-title").textContent = name;
  $("conv-avatar").textContent = initial(name);
  const status = $("conv-status");
  status.textContent = c.status;
  status.className = "pill " + c.status;
  const who = c.assignee ? (isMe(c.assignee) ? "assigned to you" : "assigned to " + c.assignee.name) : "unassigned";
  const why = c.status === "pending" && c.pending_reason ? pendingText(c.pending_reason) + " · " : "";
  $("conv-sub").textContent = why + who + " · " + c.channel;
  setLangOptions($("conv-lang"), c.language, "Language unknown");
  const open = c.status !== "resolved";
  const mineNow = c.assignee && isMe(c.assignee) && c.status === "assigned";
  // with routing on, plain agents get conversations by offer only (or take one routing gave up on:
  // pending); supervisors still take and assign
  show($("take"), open && !mineNow && (supervises() || routing !== "offers" || c.status === "pending"));
  show($("assign"), open && supervises());
  show($("transfer"), c.status === "assigned" && (mineNow || supervises()) && routing !== "manual");
  if (handoff.mode && !(handoff.mode === "assign" ? !$("assign").hidden : !$("transfer").hidden)) closeHandoff(false);
  show($("close"), open && (!c.assignee || isMe(c.assignee) || supervises()));
  const canReply = open && (mineNow || supervises());
  const priv = $("private");
  if (!canReply) {
    if (!priv.checked) priv.dataset.forced = "1";
    priv.checked = true;
  } else if (priv.dataset.forced) {
    priv.checked = false;
    delete priv.dataset.forced;
  }
  priv.disabled = !canReply;
  $("composer-hint").textContent = composerHint(c, open, canReply);
  $("translate").dataset.off = canReply ? "" : "1";
  updateComposerMode();
  renderDetails(c);
}

function composerHint(c, open, canReply) {
  if (!open) return "Closed: only private notes.";
  if (canReply) return "";
  if (!$("take").hidden) return "Take the conversation to reply.";
  if (c.status === "pending") return "Pending: a supervisor can assign it.";
  if ([...offers.values()].some((o) => o.cid === c.id)) return "Offered to you: accept it to reply.";
  if (WAITING.has(c.status)) return "Routing offers this conversation to an available agent.";
  return "Only the assigned agent can reply.";
}

function renderDetails(c) {
  const dl = $("details");
  dl.textContent = "";
  const ct = c.contact || {};
  const rows = [
    ["Name", ct.name], ["Email", ct.email], ["Phone", ct.phone], ["Language", c.language || ct.language],
    ["Channel", c.channel], ["Started", fmtTime(c.created_at)], ["Status", c.status],
    ["Assignee", c.assignee ? c.assignee.name : "—"], ["Conversation", c.id]
  ];
  for (const [k, v] of rows) {
    if (v == null || v === "") continue;
    dl.appendChild(el("dt", { text: k }));
    dl.appendChild(el("dd", { text: String(v) }));
  }
  for (const k in c.fields || {}) {
    dl.appendChild(el("dt", { text: k }));
    dl.appendChild(el("dd", { text: String(c.fields[k]) }));
  }
}

function updateComposerMode() {
  const note = $("private").checked;
  $("composer").classList.toggle("note-mode", note);
  $("reply").placeholder = note
    ? "Write a private note (the visitor never sees it)…"
    : "Write a reply…  (Enter to send, Shift+Enter for a new line, / for canned responses)";
  $("send").textContent = note ? "Add note" : "Send";
  show($("translate"), !note && !$("translate").dataset.off); // notes are never translated
  if (note) hideDraft();
}
$("private").addEventListener("change", () => {
  if ($("private").checked) stopTyping();
  updateComposerMode();
  $("reply").focus();
});

function msgNode(m, p) {
  if (m.kind === "event") {
    return el("div", { class: "msg event", "data-seq": m.seq }, [el("span", { text: m.text })]);
  }
  const contact = m.author && m.author.kind === "contact";
  const note = m.kind === "note" || (p && p.private);
  const cls = "msg " + (contact ? "them" : "us") + (note ? " note" : "") + (p ? " pending" : "") + (p && p.failed ? " failed" : "");
  const head = el("div", { class: "who" }, [
    el("span", { text: m.author ? (isMe(m.author) ? "You" : m.author.name) : "" }),
    note ? el("span", { class: "note-label", text: "Private note" }) : null
  ]);
  const meta = el("div", { class: "meta" });
  if (p && p.failed) {
    meta.appendChild(el("span", { text: "Not sent: " + (p.error || "error") }));
    meta.appendChild(el("button", { type: "button", class: "link", text: "Retry", onclick: () => retrySend(p) }));
  } else {
    meta.appendChild(el("time", { datetime: m.created_at || null, text: p ? "Sending…" : fmtTime(m.created_at) }));
  }
  const bubble = el("div", { class: "bubble" });
  fillBubble(bubble, m);
  const files = fileList(m); // console-files.js
  if (files && !m.text) bubble.hidden = true;
  if (!p) {
    const line = deliveryLine(m);
    if (line) meta.appendChild(line);
  }
  return el("div", { class: cls, "data-seq": p ? null : m.seq, "data-id": p ? null : m.id }, [head, bubble, files, meta]);
}

// -- translations ------------------------------------------------------------------------------------------
const myLang = () => (me && me.language) || (navigator.language || "en").split("-")[0].toLowerCase();

// The language a message is shown in besides its own: the agent's for visitors' messages, the visitor's
// (the conversation's) for agents' replies. Null when there is neither a translation nor a failure to show.
function trTarget(m) {
  if (m.kind !== "text" || !m.author || !m.translations) return null;
  const contact = m.author.kind === "contact";
  const c = convs.get(selected);
  const prefer = contact ? myLang() : c && c.language;
  const has = (l) => l && l !== m.lang && (m.translations[l] != null || m.untranslated[l]);
  if (has(prefer)) return prefer;
  if (!contact && prefer) return null; // a reply is only translated into the conversation's language
  return Object.keys(m.translations).find(has) || Object.keys(m.untranslated).find(has) || null;
}

function shownText(m) {
  const l = m.author && m.author.kind === "contact" ? trTarget(m) : null;
  return l && m.translations[l] != null ? m.translations[l] : m.text;
}

function fillBubble(bubble, m) {
  bubble.textContent = "";
  const l = trTarget(m);
  const contact = m.author && m.author.kind === "contact";
  const tr = l ? m.translations[l] : null;
  const main = contact && tr != null ? tr : m.text;
  bubble.appendChild(el("span", { class: "main", lang: (contact && tr != null ? l : m.lang) || null, text: main }));
  if (!l) return;
  const name = langName(contact && tr != null ? m.lang : l);
  const alt = el("div", { class: "alt" + (tr == null ? " alt-fail" : "") });
  if (tr == null) {
    alt.append(
      el("span", { class: "tag", "aria-hidden": "true", text: l.toUpperCase() }),
      el("span", { text: "Translation unavailable (" + reasonText(m.untranslated[l]) + ")" })
    );
  } else if (contact) {
    alt.append(
      el("span", { class: "tag", title: "The original, in " + name, text: "Original · " + (m.lang || "?").toUpperCase() }),
      el("span", { class: "sr", text: ", in " + name + ": " }),
      el("span", { class: "alt-text", lang: m.lang || null, text: m.text })
    );
  } else {
    alt.append(
      el("span", { class: "tag", title: "The visitor reads this translation, in " + name, text: "Visitor sees · " + l.toUpperCase() }),
      el("span", { class: "sr", text: ", in " + name + ": " }),
      el("span", { class: "alt-text", lang: l, text: tr })
    );
  }
  bubble.appendChild(alt);
}

function repaintMsg(m) {
  const node = msgNodes.get("s" + m.seq);
  if (!node) return;
  const stick = nearBottom();
  fillBubble(node.querySelector(".bubble"), m);
  if (stick) scrollBottom();
}

function mergeTr(m, tr, un) {
  let changed = false;
  m.translations = m.translations || {};
  m.untranslated = m.untranslated || {};
  for (const l in tr || {}) {
    if (tr[l] == null || m.translations[l] === tr[l]) continue;
    m.translations[l] = tr[l];
    delete m.untranslated[l];
    changed = true;
  }
  for (const l in un || {}) {
    if (m.translations[l] != null || m.untranslated[l] === un[l]) continue;
    m.untranslated[l] = un[l];
    changed = true;
  }
  return changed;
}

function onTranslated(f) {
  const m = (msgs.get(f.conversation_id) || []).find((x) => x.seq === f.seq);
  if (!m || !f.lang || (f.message_id && m.id && f.message_id !== m.id)) return;
  const ok = f.text != null;
  if (!mergeTr(m, ok ? { [f.lang]: f.text } : null, ok ? null : { [f.lang]: f.reason || "unknown" })) return;
  if (f.conversation_id === selected && loaded.has(selected)) repaintMsg(m);
  renderLists();
}

function insertNode(node, seq, key) {
  const log = $("log");
  let ref = null;
  if (seq != null) {
    const kids = log.children;
    for (let i = kids.length - 1; i >= 0; i--) {
      const s = kids[i].getAttribute("data-seq");
      if (s == null) {
        if (kids[i].classList.contains("pending")) ref = kids[i];
        continue;
      }
      if (+s < seq) break;
      ref = kids[i];
    }
  }
  log.insertBefore(node, ref);
  msgNodes.set(key, node);
}

const receipt = el("span", { class: "receipt", text: "Seen" });
function updateReceipt() {
  const list = (msgs.get(selected) || []).filter((m) => m.kind === "text" && m.author && m.author.kind === "agent");
  const last = list[list.length - 1];
  const node = last && msgNodes.get("s" + last.seq);
  if (!node || (contactRead.get(selected) || 0) < last.seq) return receipt.remove();
  node.querySelector(".meta").appendChild(receipt);
}

function renderLog() {
  const log = $("log");
  log.textContent = "";
  msgNodes.clear();
  if (!loaded.has(selected)) {
    log.appendChild(el("p", { class: "log-note", text: "Loading conversation…" }));
    return;
  }
  for (const m of msgs.get(selected) || []) insertNode(msgNode(m), m.seq, "s" + m.seq);
  for (const [id, p] of pending) if (p.cid === selected) insertNode(pendingNode(p), null, "p" + id);
  if (!log.children.length) log.appendChild(el("p", { class: "log-note", text: "No messages yet." }));
  updateReceipt();
  scrollBottom();
}

function pendingNode(p) {
  return msgNode({ kind: p.private ? "note" : "text", text: p.text, attachments: p.attachments, author: you || { kind: "agent", id: me.id, name: me.name } }, p);
}

function nearBottom() {
  const log = $("log");
  return log.scrollHeight - log.scrollTop - log.clientHeight < 120;
}
function scrollBottom() {
  const log = $("log");
  log.scrollTop = log.scrollHeight;
}

function markRead() {
  if (!selected || !loaded.has(selected) || document.visibilityState !== "visible" || !ready()) return;
  const seq = lastSeq(selected);
  if (seq > (readSent.get(selected) || 0)) {
    readSent.set(selected, seq);
    send({ type: "read", conversation_id: selected, seq });
  }
}
document.addEventListener("visibilitychange", markRead);

// -- typing ------------------------------------------------------------------------------------------------
let typingHide = 0;
function onTyping(f) {
  if (f.conversation_id !== selected || !f.author || isMe(f.author)) return;
  clearTimeout(typingHide);
  if (f.state !== "start") return hideTyping();
  $("typing").textContent = f.author.name + " is typing…";
  const stick = nearBottom();
  show($("typing"), true);
  if (stick) scrollBottom(); // the indicator takes room from the log: keep the last message in view
  typingHide = setTimeout(hideTyping, 8000);
}
function hideTyping() {
  clearTimeout(typingHide);
  show($("typing"), false);
}

let typingOn = null;
let typingAt = 0;
let typingStop = 0;
function stopTyping() {
  clearTimeout(typingStop);
  if (typingOn && ready()) send({ type: "typing", conversation_id: typingOn, state: "stop" });
  typingOn = null;
}
$("reply").addEventListener("input", () => {
  const c = convs.get(selected);
  if (!c || $("private").checked || c.status === "resolved" || !ready()) return;
  if (!$("reply").value.trim()) return stopTyping();
  const now = Date.now();
  if (typingOn !== selected || now - typingAt > 3000) {
    send({ type: "typing", conversation_id: selected, state: "start" });
    typingOn = selected;
    typingAt = now;
  }
  clearTimeout(typingStop);
  typingStop = setTimeout(stopTyping, 4000);
});

// -- composer and actions -------------------------------------------------------------------------------
$("reply").addEventListener("keydown", (e) => {
  if (picker.open && pickerKey(e)) return;
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    $("composer").requestSubmit();
  }
});
$("composer").addEventListener("submit", (e) => {
  e.preventDefault();
  sendText($("reply").value.trim());
});

function sendText(text) {
  if (!text || !selected) return;
  $("reply").value = "";
  closePicker();
  hideDraft();
  stopTyping();
  const p = { cid: selected, client_id: uid(), text, private: $("private").checked, created_at: new Date().toISOString() };
  pending.set(p.client_id, p);
  const note = $("log").querySelector(".log-note");
  if (note) note.remove();
  insertNode(pendingNode(p), null, "p" + p.client_id);
  scrollBottom();
  sendItem(p);
}

function sendItem(p) {
  if (p.inflight || !ready()) return;
  p.inflight = true;
  const frame = { type: "message.send", conversation_id: p.cid, client_id: p.client_id, text: p.text };
  if (p.private) frame.private = true;
  if (p.attachments) frame.attachments = p.attachments.map((a) => a.id);
  request(frame).then(
    (a) => {
      pending.delete(p.client_id);
      const author = you || { kind: "agent", id: me.id, name: me.name };
      addMessage(a.conversation_id, {
        seq: a.seq, id: a.message_id, kind: p.private ? "note" : "text", text: p.text, author,
        created_at: a.created_at, client_id: p.client_id, attachments: p.attachments || []
      }, true);
      const stale = msgNodes.get("p" + p.client_id);
      if (stale) {
        stale.remove();
        msgNodes.delete("p" + p.client_id);
      }
    },
    (err) => {
      p.inflight = false;
      if (err.code === "disconnected") return; // re-sent with the same client_id after the reconnect
      p.failed = true;
      p.error = err.message;
      repaintPending(p);
    }
  );
}
function repaintPending(p) {
  const old = msgNodes.get("p" + p.client_id);
  if (!old) return;
  const node = pendingNode(p);
  old.replaceWith(node);
  msgNodes.set("p" + p.client_id, node);
}
function retrySend(p) {
  p.failed = false;
  p.error = null;
  repaintPending(p);
  sendItem(p);
}
