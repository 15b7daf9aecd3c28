/* chatserver agent console: the connection to /ws/agent, its frames, and the Waiting and Mine lists (see console.js). */
"use strict";

// -- the WebSocket ------------------------------------------------------------------------------------------
const ready = () => !!(ws && ws.readyState === 1 && you);

function send(frame) {
  if (ws && ws.readyState === 1) ws.send(JSON.stringify(frame));
}
function request(frame) {
  return new Promise((resolve, reject) => {
    if (!ready()) return reject({ code: "disconnected", message: "Not connected." });
    frame.ref = "c" + ++refSeq;
    refs.set(frame.ref, { resolve, reject });
    send(frame);
  });
}

function setConn(text) {
  $("conn").textContent = text || "";
  show($("conn"), !!text);
}

// Replace the connection without going offline: the new one opens first; the old one closes at its hello.
let retiring = null;
const helloWaiters = [];
function refreshConnection() {
  if (!ws || ws.readyState !== 1 || !you) return Promise.resolve();
  const old = ws;
  old.onclose = null;
  ws = null;
  you = null;
  clearInterval(beat);
  for (const [, p] of refs) p.reject({ code: "disconnected", message: "Reconnecting." });
  refs.clear();
  for (const p of pending.values()) p.inflight = false;
  retire(retiring);
  retiring = old;
  connect();
  return new Promise((resolve) => {
    helloWaiters.push(resolve);
    setTimeout(() => { retire(old); resolve(); }, 10000);
  });
}
function retire(sock) {
  if (!sock) return;
  if (retiring === sock) retiring = null;
  try { sock.close(1000, "replaced"); } catch (e) { /* already closed */ }
}

function connect() {
  if (ws || !loggedIn) return;
  clearTimeout(retryTimer);
  const sock = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/agent");
  ws = sock;
  sock.onmessage = (e) => { if (ws === sock) onFrame(e.data); };
  sock.onclose = (e) => { if (ws === sock) onClose(e.code); };
}

function backoff() {
  const base = Math.min(30000, 1000 * Math.pow(2, attempt++));
  return base / 2 + Math.random() * (base / 2);
}
function retry(delay) {
  clearTimeout(retryTimer);
  if (!loggedIn) return;
  setConn("Connection lost. Reconnecting…");
  retryTimer = setTimeout(connect, delay);
}

function drop(sock) {
  if (ws !== sock) return;
  sock.onclose = null;
  try { sock.close(); } catch (e) { /* already closed */ }
  onClose(1006);
}

function onClose(code) {
  ws = null;
  you = null;
  clearInterval(beat);
  for (const [, p] of refs) p.reject({ code: "disconnected", message: "Connection lost." });
  refs.clear();
  for (const p of pending.values()) p.inflight = false;
  hideTyping();
  if (code === 4401) return showLogin("Your session has ended. Please sign in again.");
  if (code === 4403) {
    setConn("This console's address is not allowed to connect (origin refused).");
    return;
  }
  if (SLOW.includes(code) || RESTART.includes(code)) return retry(Math.random() * 1000);
  if (code === 4429) attempt += 2;
  retry(backoff());
}

function onFrame(text) {
  let f;
  try { f = JSON.parse(text); } catch (e) { return; }
  lastRx = Date.now();
  switch (f.type) {
    case "hello": return onHello(f);
    case "conversation": return onConversation(f.conversation);
    case "message": return addMessage(f.conversation_id, Object.assign({ seq: f.seq }, f.message), true);
    case "message.translated": return onTranslated(f);
    case "snapshot": return onSnapshot(f);
    case "offer": return onOffer(f);
    case "queue": return onQueue(f);
    case "offer.revoked": return onOfferRevoked(f);
    case "notice": return onNotice(f);
    case "ticket":
    case "sla":
    case "message.status":
      onDeliveryStatus(f); // console-files.js: the live conversation
      return window.ChatTickets && window.ChatTickets.frame(f);
    case "ack":
    case "error": {
      const p = f.ref != null && refs.get(f.ref);
      if (p) {
        refs.delete(f.ref);
        if (f.type === "ack") p.resolve(f);
        else p.reject(f);
      } else if (f.type === "error") toast(f.message);
      return;
    }
    case "typing": return onTyping(f);
    case "read":
      if (f.reader && f.reader.kind === "contact" && f.seq > (contactRead.get(f.conversation_id) || 0)) {
        contactRead.set(f.conversation_id, f.seq);
        if (f.conversation_id === selected) updateReceipt();
      }
      return;
    case "presence": {
      const a = f.agent;
      if (!a) return;
      const known = agents.get(a.id);
      agents.set(a.id, { name: a.name, status: f.status });
      presenceAt.set(a.id, Date.now());
      if (me && a.id === me.id && f.status !== "offline") {
        setStatusPick(f.status);
        if (f.status === "online") hideRona();
      }
      if (!known || known.status !== f.status) {
        renderTeam();
        if (handoff.mode) fillHandoff(); // the choices follow who is online
      }
      return;
    }
  }
}

function onHello(f) {
  you = f.you;
  attempt = 0;
  setConn(null);
  retire(retiring);
  helloWaiters.splice(0).forEach((resolve) => resolve());
  clearOffers(); // the server sends the ones still open again, after the snapshot
  if (f.routing === "offers" || f.routing === "manual") setRouting(f.routing);
  else if (!routing) detectRouting();
  const hb = Math.max(5, +f.heartbeat_s || 20) * 1000;
  const sock = ws;
  clearInterval(beat);
  beat = setInterval(() => {
    if (Date.now() - lastRx > hb * 2.5) drop(sock);
    else send({ type: "ping" });
  }, hb);
  // The burst of `conversation` frames that follows lists the waiting conversations this agent sees (all of
  // them for supervisors and with manual routing, else the pending ones) and all of mine; the `snapshot`
  // frame that ends it says which: the others are pruned then (no empty lists meanwhile).
  const cursors = {};
  for (const id of loaded) {
    cursors[id] = lastSeq(id);
    // a translation that failed may have been filled in while we were away: fetch those messages again
    const late = (msgs.get(id) || []).slice(-30).find((m) =>
      Object.keys(m.untranslated || {}).some((l) => RETRYABLE.includes(m.untranslated[l]) && m.translations[l] == null));
    if (late) cursors[id] = Math.min(cursors[id], late.seq - 1);
  }
  send({ type: "resume", ref: "resume", cursors }); // first, even empty: it places the live stream
  if (selected && !loaded.has(selected)) loadConversation(selected);
  else if (!selected && /^#[\w-]{1,64}$/.test(location.hash)) select(location.hash.slice(1));
  for (const p of pending.values()) if (!p.failed) sendItem(p);
}

// -- conversations and lists ------------------------------------------------------------------------------
function onConversation(c) {
  if (!c || !c.id) return;
  const old = convs.get(c.id);
  if (old && old.version > c.version) return;
  convs.set(c.id, c);
  for (const r of c.reads || []) {
    if (r.reader && r.reader.kind === "contact" && r.seq > (contactRead.get(c.id) || 0)) contactRead.set(c.id, r.seq);
  }
  for (const o of [...offers.values()]) {
    if (o.cid !== c.id) continue;
    if (c.status === "offered") renderOffer(o);
    else removeOffer(o.id); // answered elsewhere (another tab), or withdrawn
  }
  renderLists();
  if (c.id === selected) {
    renderHeader();
    if (old && old.language !== c.language) renderLog(); // "visitor sees" follows the conversation's language
    else updateReceipt();
  }
}

function onSnapshot(f) {
  const keep = new Set(f.conversation_ids || []);
  for (const id of [...convs.keys()]) if (!keep.has(id) && id !== selected) convs.delete(id);
  renderLists();
}

function bucket(c) {
  if (WAITING.has(c.status)) {
    const offeredToMe = c.status === "offered" && [...offers.values()].some((o) => o.cid === c.id);
    return watchesQueue() || c.status === "pending" || offeredToMe ? "waiting" : null;
  }
  if (c.status !== "resolved" && c.assignee && me && c.assignee.id === me.id) return "mine";
  return null;
}

function renderLists() {
  const waiting = [];
  const mine = [];
  for (const c of convs.values()) {
    const b = bucket(c);
    if (b === "waiting") waiting.push(c);
    else if (b === "mine") mine.push(c);
  }
  const since = (c) => Date.parse(c.enqueued_at || c.created_at);
  waiting.sort((a, b) => (b.priority || 0) - (a.priority || 0) || since(a) - since(b));
  mine.sort((a, b) => Date.parse(b.updated_at) - Date.parse(a.updated_at));
  fillList($("waiting"), waiting, true);
  fillList($("mine"), mine, false);
  for (const [id, li] of itemNodes) {
    if (!li.isConnected || !convs.has(id)) {
      li.remove();
      itemNodes.delete(id);
    }
  }
  const count = waitingCount(waiting.length);
  $("waiting-count").textContent = count;
  $("mine-count").textContent = mine.length;
  show($("waiting-empty"), !waiting.length && (watchesQueue() || !queueSummary));
  show($("mine-empty"), !mine.length);
  renderQueueSummary();
  updateTitle(count);
}

function fillList(ul, list, isWaiting) {
  const keep = new Set(list.map((c) => c.id));
  for (const li of [...ul.children]) if (!keep.has(li.dataset.id)) li.remove();
  list.forEach((c, i) => {
    let li = itemNodes.get(c.id);
    if (!li) {
      li = el("li", { "data-id": c.id }, [
        el("button", { type: "button", class: "conv-item", onclick: () => select(c.id) }, [
          el("span", { class: "avatar", "aria-hidden": "true" }),
          el("span", { class: "ci-main" }, [
            el("span", { class: "ci-name" }),
            el("span", { class: "ci-sub" }, [el("span", { class: "ci-tag" }), el("span", { class: "ci-text" })])
          ]),
          el("span", { class: "ci-dot", "aria-hidden": "true" })
        ])
      ]);
      itemNodes.set(c.id, li);
    }
    const name = (c.contact && c.contact.name) || "Visitor";
    const last = (msgs.get(c.id) || []).filter((m) => m.kind === "text").pop();
    li.querySelector(".avatar").textContent = initial(name);
    li.querySelector(".ci-name").textContent = name;
    const tag = li.querySelector(".ci-tag");
    tag.textContent = isWaiting ? waitingLabel(c) : "";
    tag.className = "ci-tag " + (isWaiting ? c.status : "");
    show(tag, isWaiting);
    li.querySelector(".ci-text").textContent = isWaiting
      ? " · " + ago(c.enqueued_at || c.created_at)
      : last ? (last.author && last.author.kind === "contact" ? "" : "You: ") + shownText(last) : "Assigned to you";
    const btn = li.firstChild;
    btn.classList.toggle("unread", unread.has(c.id));
    if (c.id === selected) btn.setAttribute("aria-current", "true");
    else btn.removeAttribute("aria-current");
    if (ul.children[i] !== li) ul.insertBefore(li, ul.children[i] || null);
  });
}

setInterval(() => { if (loggedIn) renderLists(); }, 30000);
