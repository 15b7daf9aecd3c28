/* chatserver agent console: plain JS, no framework, no build step.
 *
 * Live state comes from /ws/agent (protocol v1, docs/protocol.md): `conversation` frames keep the Waiting and
 * Mine lists current; selecting a conversation sends `conversation.view` (the server follows it for us), then
 * loads its history over REST; later messages arrive as `message` frames, deduplicated by seq. After a
 * reconnect the console sends `resume` with the highest seq it holds per loaded conversation.
 * Translation: a visitor's message shows in the agent's language with the original below it; the agent's own
 * message shows the translation the visitor reads; `message.translated` fills them in place. "Translate draft"
 * (`draft.translate`) previews a reply in the visitor's language; "/" in the composer picks a canned response,
 * rendered in the visitor's language by the server.
 * Routing (CHATSERVER_ROUTING=offers): the server offers waiting conversations to one agent at a time. Each
 * `offer` shows as a card with a countdown (Accept: `offer.accept`, Decline: `offer.decline`) until answered or
 * `offer.revoked`; a `notice` with code "rona" (set away after missed offers) shows a banner with "Go online".
 * Plain agents cannot take conversations then; supervisors still Take and "Assign to…" (`conversation.claim`
 * with `agent_id`). "Transfer" (`conversation.transfer`) hands an assigned conversation to an online agent or
 * a team, who get an offer.
 * User content is only ever set with textContent.
 */
(() => {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const WAITING = new Set(["queued", "offered", "pending"]);
  const SLOW = [4008, 4408];
  const PAGE = 500;
  const RETRYABLE = ["provider_unavailable", "quota_exceeded", "bad_response"]; // the server retries these
  const LANGS = [
    "ar", "cs", "da", "de", "el", "en", "es", "fi", "fr", "he", "hi", "hu", "id", "it", "ja", "ko", "nl", "no",
    "pl", "pt", "ro", "ru", "sv", "th", "tr", "uk", "vi", "zh"
  ];

  let me = null; // the agent (REST shape)
  let you = null; // the agent as an author (from hello)
  let csrf = null;
  let loggedIn = false;
  let ws = null;
  let attempt = 0;
  let retryTimer = 0;
  let beat = 0;
  let lastRx = 0;
  let refSeq = 0;
  let selected = null;
  let routing = null; // "offers" | "manual" | null while not known

  const convs = new Map(); // id -> conversation payload
  const msgs = new Map(); // id -> [message with seq], sorted
  const loaded = new Set(); // conversations whose history is complete here (and followed by the server)
  const loading = new Set();
  const unread = new Set();
  const contactRead = new Map(); // id -> seq the visitor has read
  const readSent = new Map();
  const pending = new Map(); // client_id -> {cid, text, private, created_at, failed, error, inflight}
  const refs = new Map();
  const agents = new Map(); // id -> {name, status}
  const presenceAt = new Map(); // agent id -> when its last `presence` frame arrived (Date.now())
  const itemNodes = new Map(); // conversation id -> <li>
  const msgNodes = new Map(); // "s<seq>" | "p<client_id>" -> element of the open conversation
  const offers = new Map(); // offer_id -> {id, cid, expires, total, node, busy}
  const teams = new Map(); // team id -> name

  // -- small helpers ------------------------------------------------------------------------------------
  function el(tag, attrs, kids) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) {
      const v = attrs[k];
      if (v == null || v === false) continue;
      if (k === "text") e.textContent = v;
      else if (k === "class") e.className = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of kids || []) if (c) e.appendChild(c);
    return e;
  }
  const show = (node, on) => { node.hidden = !on; };
  const initial = (name) => (String(name || "?").trim()[0] || "?").toUpperCase();
  const supervises = () => me && (me.role === "admin" || me.role === "supervisor");
  const isMe = (author) => !!(author && me && author.kind === "agent" && author.id === me.id);

  function fmtTime(iso) {
    const t = iso ? new Date(iso) : new Date();
    if (isNaN(t)) return "";
    const today = new Date().toDateString() === t.toDateString();
    return today
      ? t.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
      : t.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  }
  function ago(iso) {
    const s = (Date.now() - Date.parse(iso)) / 1000;
    if (!(s >= 0) || s < 60) return "just now";
    if (s < 3600) return Math.floor(s / 60) + " min";
    if (s < 86400) return Math.floor(s / 3600) + " h";
    return Math.floor(s / 86400) + " d";
  }
  let langNames = null;
  try { langNames = new Intl.DisplayNames(["en"], { type: "language" }); } catch (e) { /* old browser: codes */ }
  function langName(code) {
    if (!code) return "";
    try { return (langNames && langNames.of(code)) || code; } catch (e) { return code; }
  }
  const reasonText = (r) => String(r || "unknown").replace(/_/g, " ");

  function setLangOptions(sel, value, none) {
    const want = value || "";
    if (!sel.options.length || (want && ![...sel.options].some((o) => o.value === want))) {
      const codes = new Set(LANGS);
      if (want) codes.add(want);
      sel.textContent = "";
      sel.appendChild(el("option", { value: "", text: none }));
      for (const c of [...codes].sort((a, b) => langName(a).localeCompare(langName(b)))) {
        sel.appendChild(el("option", { value: c, text: langName(c) + " (" + c + ")" }));
      }
    }
    sel.value = want;
  }

  function uid() {
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return "c" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  }

  let toastTimer = 0;
  function toast(text) {
    const t = $("toast");
    t.textContent = text;
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.hidden = true; }, 6000);
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body) headers["Content-Type"] = "application/json";
    if (csrf && method !== "GET") headers["X-CSRF-Token"] = csrf;
    let res;
    try {
      res = await fetch(path, {
        method, headers, credentials: "same-origin", body: body ? JSON.stringify(body) : undefined
      });
    } catch (e) {
      return { ok: false, status: 0, error: { code: "network", message: "Cannot reach the server. Check your connection." } };
    }
    let data = null;
    try { data = await res.json(); } catch (e) { /* not JSON */ }
    const error = (data && data.error) || { code: "http", message: "The server answered " + res.status + "." };
    return { ok: res.ok, status: res.status, data, error };
  }

  // -- login / logout -------------------------------------------------------------------------------------
  function showLogin(message) {
    teardown();
    show($("boot"), false);
    show($("app"), false);
    show($("login"), true);
    const err = $("login-error");
    err.textContent = message || "";
    err.hidden = !message;
    document.title = "Sign in · chatserver";
    ($("email").value ? $("password") : $("email")).focus();
  }

  $("login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const err = $("login-error");
    const email = $("email").value.trim();
    const password = $("password").value;
    if (!email || !password) {
      err.textContent = "Enter your email and password.";
      err.hidden = false;
      return;
    }
    const btn = $("login-submit");
    btn.disabled = true;
    btn.textContent = "Signing in…";
    const r = await api("POST", "/api/v1/auth/login", { email, password });
    btn.disabled = false;
    btn.textContent = "Sign in";
    if (!r.ok) {
      err.textContent = r.status === 401 ? "Wrong email or password." : r.error.message;
      err.hidden = false;
      $("password").select();
      return;
    }
    $("password").value = "";
    err.hidden = true;
    startApp(r.data);
  });

  $("logout").addEventListener("click", async () => {
    const r = await api("POST", "/api/v1/auth/logout");
    if (!r.ok && r.status !== 401) {
      toast("Could not log out: " + r.error.message);
      return;
    }
    history.replaceState(null, "", location.pathname);
    showLogin();
  });

  function teardown() {
    loggedIn = false;
    clearTimeout(retryTimer);
    clearInterval(beat);
    retire(retiring);
    helloWaiters.splice(0).forEach((resolve) => resolve());
    if (ws) {
      const sock = ws;
      ws = null;
      sock.onclose = null;
      sock.close(1000, "logout");
    }
    for (const [, p] of refs) p.reject({ code: "disconnected" });
    refs.clear();
    if (window.ChatTickets) window.ChatTickets.stop();
    clearOffers();
    hideRona();
    closeHandoff(false);
    for (const m of [convs, msgs, contactRead, readSent, pending, agents, presenceAt, itemNodes, msgNodes, teams]) m.clear();
    for (const s of [loaded, loading, unread]) s.clear();
    selected = null;
    routing = null;
    me = you = csrf = null;
    for (const id of ["waiting", "mine", "team", "log"]) $(id).textContent = "";
    $("reply").value = "";
    closePicker();
    hideDraft();
    show($("conv"), false);
    show($("placeholder"), true);
  }

  function startApp(data) {
    me = data.agent;
    csrf = data.csrf_token || csrf;
    loggedIn = true;
    show($("boot"), false);
    show($("login"), false);
    show($("app"), true);
    $("me-name").textContent = me.name;
    // `chosen_status` is what the agent picked; `agent.status` is the effective one (offline until connected)
    setStatusPick((data.chosen_status || me.status) === "away" ? "away" : "online");
    setLangOptions($("my-lang"), me.language, "Default language");
    renderLists();
    loadTeam();
    loadTeams();
    if (window.ChatTickets) {
      window.ChatTickets.start({
        api, request, el, toast,
        me: () => me,
        agentName: (id) => (agents.get(id) || {}).name,
        selected: () => selected,
        clearSelection
      });
    }
    connect();
  }

  // the Tickets view (tickets.js) takes the main area: no conversation is open meanwhile
  function clearSelection() {
    stopTyping();
    selected = null;
    closeHandoff(false);
    history.replaceState(null, "", location.pathname);
    show($("conv"), false);
    show($("placeholder"), false);
    renderLists();
  }

  async function loadTeam() {
    const asked = Date.now();
    const r = await api("GET", "/api/v1/agents");
    if (!r.ok || !loggedIn) return false;
    const live = new Map(agents);
    agents.clear();
    for (const a of r.data.items) {
      if (!a.active) continue;
      // a `presence` frame that arrived while the list was on its way is newer than the list
      const known = live.get(a.id);
      const status = known && (presenceAt.get(a.id) || 0) >= asked ? known.status : a.status;
      agents.set(a.id, { name: a.name, status });
    }
    renderTeam();
    return true;
  }

  async function loadTeams() {
    const r = await api("GET", "/api/v1/teams");
    if (!r.ok) return false;
    teams.clear();
    for (const t of r.data.items) teams.set(t.id, t.name);
    return true;
  }

  function renderTeam() {
    const ul = $("team");
    ul.textContent = "";
    const list = [...agents.entries()].sort((a, b) => a[1].name.localeCompare(b[1].name));
    for (const [id, a] of list) {
      ul.appendChild(el("li", { class: "agent " + a.status }, [
        el("span", { class: "dot", "aria-hidden": "true" }),
        el("span", { class: "agent-name", text: a.name + (me && id === me.id ? " (you)" : "") }),
        el("span", { class: "agent-status", text: a.status })
      ]));
    }
  }

  function setStatusPick(value) {
    $("status").value = value;
    $("status-pick").className = "status-pick " + value;
  }
  $("my-lang").addEventListener("change", async () => {
    const sel = $("my-lang");
    const before = me.language || "";
    const value = sel.value || null;
    sel.setAttribute("aria-busy", "true");
    const r = await api("PATCH", "/api/v1/agents/" + encodeURIComponent(me.id), { language: value });
    if (!r.ok) {
      sel.removeAttribute("aria-busy");
      sel.value = before;
      return toast("Could not change your language: " + r.error.message);
    }
    me.language = r.data.language || null;
    setLangOptions(sel, me.language, "Default language");
    renderLists();
    if (selected) renderLog();
    // An open connection keeps the profile it was opened with (taking a conversation translates its history
    // into the agent's language then): open a fresh one so the new language applies at once.
    await refreshConnection();
    sel.removeAttribute("aria-busy");
  });

  $("status").addEventListener("change", () => {
    const value = $("status").value;
    $("status-pick").className = "status-pick " + value;
    request({ type: "status.set", status: value }).then(
      () => { if (value === "online") hideRona(); },
      (err) => {
        toast(err.code === "disconnected" ? "Not connected; your status will not change." : err.message);
        setStatusPick(value === "away" ? "online" : "away");
      }
    );
  });

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
    if (SLOW.includes(code)) return retry(Math.random() * 1000);
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
      case "offer.revoked": return onOfferRevoked(f);
      case "notice": return onNotice(f);
      case "ticket":
      case "sla":
      case "message.status": return window.ChatTickets && window.ChatTickets.frame(f);
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
    // The burst of `conversation` frames that follows lists every waiting conversation and all of mine; the
    // `snapshot` frame that ends it says which: the others are pruned then (no empty lists meanwhile).
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
    if (WAITING.has(c.status)) return "waiting";
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
    $("waiting-count").textContent = waiting.length;
    $("mine-count").textContent = mine.length;
    show($("waiting-empty"), !waiting.length);
    show($("mine-empty"), !mine.length);
    updateTitle(waiting.length);
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
      lang: m.lang || null, translations: {}, untranslated: {}
    };
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
    return el("div", { class: cls, "data-seq": p ? null : m.seq }, [head, bubble, meta]);
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
    return msgNode({ kind: p.private ? "note" : "text", text: p.text, author: you || { kind: "agent", id: me.id, name: me.name } }, p);
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
    request(frame).then(
      (a) => {
        pending.delete(p.client_id);
        const author = you || { kind: "agent", id: me.id, name: me.name };
        addMessage(a.conversation_id, {
          seq: a.seq, id: a.message_id, kind: p.private ? "note" : "text", text: p.text, author,
          created_at: a.created_at, client_id: p.client_id
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

  // -- canned responses: "/" at the start of the reply (or the Canned button) --------------------------------
  const picker = { open: false, from: 0, to: 0, items: [], active: 0 };
  let cannedCache = null;
  let cannedAt = 0;
  let pickerSeq = 0;

  async function cannedItems() {
    if (cannedCache && Date.now() - cannedAt < 60000) return cannedCache;
    const r = await api("GET", "/api/v1/canned-responses");
    if (!r.ok) {
      toast("Could not load canned responses: " + r.error.message);
      return [];
    }
    cannedCache = r.data.items;
    cannedAt = Date.now();
    return cannedCache;
  }

  function slashQuery() {
    const ta = $("reply");
    const found = /^\/([\w.-]*)$/.exec(ta.value.slice(0, ta.selectionStart));
    return found && ta.selectionStart === ta.selectionEnd ? found[1] : null;
  }

  async function openPicker(from, to, query) {
    const n = ++pickerSeq;
    const items = await cannedItems();
    if (n !== pickerSeq) return; // superseded by newer typing
    const q = query.toLowerCase();
    const rank = (c) => (c.shortcut.toLowerCase().startsWith(q) ? 0 : c.shortcut.toLowerCase().includes(q) ? 1 : 2);
    picker.items = items
      .filter((c) => rank(c) < 2)
      .sort((a, b) => rank(a) - rank(b) || a.shortcut.localeCompare(b.shortcut))
      .slice(0, 8);
    Object.assign(picker, { open: true, from, to, active: 0 });
    const ul = $("canned-list");
    ul.textContent = "";
    picker.items.forEach((c, i) => {
      ul.appendChild(el("li", {
        id: "canned-" + i, role: "option", class: "canned-item", "aria-selected": "false",
        onmousedown: (e) => e.preventDefault(), // keep the focus in the reply
        onclick: () => chooseCanned(i)
      }, [el("span", { class: "canned-sc", text: "/" + c.shortcut }), el("span", { class: "canned-text", text: c.text })]));
    });
    const empty = $("canned-empty");
    empty.textContent = items.length
      ? "No canned response starts with “/" + query + "”."
      : "There are no canned responses yet.";
    show(empty, !picker.items.length);
    show($("canned"), true);
    $("canned-btn").setAttribute("aria-expanded", "true");
    setActive(0);
  }

  function setActive(i) {
    const opts = $("canned-list").children;
    if (!opts.length) return $("reply").removeAttribute("aria-activedescendant");
    picker.active = (i + opts.length) % opts.length;
    [...opts].forEach((o, k) => o.setAttribute("aria-selected", String(k === picker.active)));
    opts[picker.active].scrollIntoView({ block: "nearest" });
    $("reply").setAttribute("aria-activedescendant", opts[picker.active].id);
  }

  function closePicker() {
    pickerSeq++;
    picker.open = false;
    show($("canned"), false);
    $("canned-btn").setAttribute("aria-expanded", "false");
    $("reply").removeAttribute("aria-activedescendant");
  }

  function pickerKey(e) {
    if (e.key === "ArrowDown" || e.key === "ArrowUp") setActive(picker.active + (e.key === "ArrowDown" ? 1 : -1));
    else if ((e.key === "Enter" || e.key === "Tab") && !e.shiftKey && picker.items.length) chooseCanned(picker.active);
    else if (e.key === "Escape") closePicker();
    else return false;
    e.preventDefault();
    e.stopPropagation();
    return true;
  }

  async function chooseCanned(i) {
    const item = picker.items[i];
    const cid = selected;
    const ta = $("reply");
    const { from, to } = picker;
    const token = ta.value.slice(from, to);
    closePicker();
    if (!item || !cid) return;
    const r = await api("POST", "/api/v1/canned-responses/" + encodeURIComponent(item.id) + "/render", { conversation_id: cid });
    if (cid !== selected) return;
    let text = item.text;
    if (!r.ok) toast("Could not prepare the canned response: " + r.error.message);
    else {
      text = r.data.text;
      if (r.data.reason && !["same_language", "disabled"].includes(r.data.reason)) {
        toast("The canned response is not translated (" + reasonText(r.data.reason) + "): check it before sending.");
      }
    }
    const at = ta.value.slice(from, to) === token ? from : ta.selectionStart;
    const end = ta.value.slice(from, to) === token ? to : ta.selectionEnd;
    ta.value = ta.value.slice(0, at) + text + ta.value.slice(end);
    ta.focus();
    ta.setSelectionRange(at + text.length, at + text.length);
    hideDraft();
  }

  $("reply").addEventListener("input", () => {
    const q = slashQuery();
    if (q != null) openPicker(0, $("reply").selectionStart, q);
    else if (picker.open) closePicker();
    if (draft && $("reply").value.trim() !== draft.text) hideDraft(); // the preview no longer matches
  });
  $("reply").addEventListener("blur", () => setTimeout(() => {
    if (document.activeElement !== $("reply")) closePicker();
  }, 150));
  $("canned-btn").addEventListener("click", () => {
    const ta = $("reply");
    if (picker.open) return closePicker();
    if (!ta.value.trim()) {
      ta.value = "/";
      ta.focus();
      ta.setSelectionRange(1, 1);
      return openPicker(0, 1, "");
    }
    ta.focus();
    openPicker(ta.selectionStart, ta.selectionEnd, ""); // inserted at the cursor
  });

  // -- "Translate draft": the reply in the visitor's language, to check before sending ---------------------
  let draft = null; // {cid, text, translated}

  function hideDraft() {
    draft = null;
    if ($("draft").hidden) return;
    keepBottom(() => show($("draft"), false));
  }
  // The composer grows or shrinks: the log keeps its last message in view if it showed it.
  function keepBottom(change) {
    const stick = nearBottom();
    change();
    if (stick) scrollBottom();
  }

  $("translate").addEventListener("click", async () => {
    const text = $("reply").value.trim();
    const cid = selected;
    const btn = $("translate");
    if (!text || !cid) {
      $("reply").focus();
      return toast("Write a reply first, then translate it.");
    }
    btn.disabled = true;
    btn.textContent = "Translating…";
    let a = null;
    try {
      a = await request({ type: "draft.translate", conversation_id: cid, text });
    } catch (err) {
      toast("Could not translate the draft: " + err.message);
    } finally {
      btn.disabled = false;
      btn.textContent = "Translate draft";
    }
    if (!a || cid !== selected || $("reply").value.trim() !== text) return;
    draft = { cid, text, translated: a.text };
    const ok = a.text != null;
    $("draft-label").textContent = ok ? "Visitor sees · " + langName(a.lang) : "Not translated";
    const body = $("draft-text");
    body.textContent = ok
      ? a.text
      : a.reason === "same_language"
        ? "The visitor reads your language: no translation needed."
        : a.reason === "disabled"
          ? "Translation is not set up on this server."
          : "The draft could not be translated (" + reasonText(a.reason) + "). You can send the original.";
    body.lang = ok ? a.lang || "" : "";
    body.classList.toggle("muted", !ok);
    show($("send-translation"), ok);
    keepBottom(() => show($("draft"), true));
  });
  $("send-translation").addEventListener("click", () => {
    if (draft && draft.cid === selected && draft.translated) sendText(draft.translated);
    $("reply").focus();
  });
  $("send-original").addEventListener("click", () => {
    sendText($("reply").value.trim());
    $("reply").focus();
  });
  $("draft-dismiss").addEventListener("click", () => {
    hideDraft();
    $("reply").focus();
  });

  // -- the conversation's language ------------------------------------------------------------------------
  $("conv-lang").addEventListener("change", async () => {
    const id = selected;
    const sel = $("conv-lang");
    const c = convs.get(id);
    const value = sel.value || null;
    sel.setAttribute("aria-busy", "true");
    const r = await api("PATCH", "/api/v1/conversations/" + encodeURIComponent(id), { language: value });
    sel.removeAttribute("aria-busy");
    if (!r.ok) {
      if (id === selected && c) sel.value = c.language || "";
      return toast("Could not change the conversation's language: " + r.error.message);
    }
    if (r.data && r.data.id) onConversation(r.data);
  });

  $("take").addEventListener("click", () => {
    const id = selected;
    request({ type: "conversation.claim", conversation_id: id }).then(
      () => { if (id === selected) $("reply").focus(); },
      (err) => {
        if (err.code === "forbidden" && !supervises()) setRouting("offers"); // hides Take
        toast("Could not take the conversation: " + err.message);
      }
    );
  });
  $("close").addEventListener("click", () => {
    request({ type: "conversation.close", conversation_id: selected }).catch((err) =>
      toast("Could not close the conversation: " + err.message)
    );
  });

  // -- routing: offers, the RONA notice, assigning and transferring ------------------------------------------
  const PENDING = {
    no_agent_eligible: "No agent available",
    outside_business_hours: "Outside business hours",
    max_wait_exceeded: "Waited too long"
  };
  const pendingText = (reason) => PENDING[reason] || reasonText(reason);
  function waitingLabel(c) {
    if (c.status === "pending") return c.pending_reason ? pendingText(c.pending_reason) : "Pending";
    if (c.status === "offered") return [...offers.values()].some((o) => o.cid === c.id) ? "Offered to you" : "Offered";
    return "Queued";
  }

  function updateTitle(waitingCount) {
    const n = waitingCount == null ? +$("waiting-count").textContent || 0 : waitingCount;
    document.title = (offers.size ? "New chat offer · " : "") + (n ? "(" + n + ") " : "") + "chatserver console";
  }

  let announceTimer = 0;
  function announce(text) {
    const node = $("announce");
    node.textContent = "";
    clearTimeout(announceTimer);
    announceTimer = setTimeout(() => { node.textContent = text; }, 60); // a change, so it is read out
  }

  function setRouting(mode) {
    if (routing === mode) return;
    routing = mode;
    if (selected) renderHeader();
  }

  // No frame names the routing mode: supervisors see whether a router runs in the routing metrics; for plain
  // agents, claiming a conversation that cannot exist tells it without changing anything (routing on: plain
  // agents may not claim at all, `forbidden`; off: `not_found`).
  async function detectRouting() {
    if (supervises()) {
      const r = await api("GET", "/api/v1/routing/metrics");
      if (r.ok && r.data && "router" in r.data) setRouting(r.data.router ? "offers" : "manual");
      return;
    }
    request({ type: "conversation.claim", conversation_id: "cv_routing_probe" }).then(
      () => {},
      (err) => {
        if (err.code === "forbidden") setRouting("offers");
        else if (err.code === "not_found") setRouting("manual");
      }
    );
  }

  // offers: one card each, newest last, until answered, revoked or no longer offered
  let offerSeq = 0;
  let offerTick = 0;

  function onOffer(f) {
    const c = f.conversation;
    if (!f.offer_id || !c || !c.id) return;
    setRouting("offers");
    onConversation(c);
    let o = offers.get(f.offer_id);
    const fresh = !o;
    if (fresh) offers.set(f.offer_id, (o = { id: f.offer_id, cid: c.id, n: ++offerSeq }));
    const now = Date.now();
    o.expires = Date.parse(f.expires_at) || now + 30000;
    // the whole offer time, for the progress bar: from when the conversation was offered (its updated_at)
    const offered = Date.parse(c.updated_at);
    o.total = Math.max(o.expires - (offered < o.expires ? offered : now), o.expires - now, 1000);
    renderOffer(o);
    startBar(o);
    if (!loaded.has(o.cid)) loadConversation(o.cid); // follow it: the preview fills in as messages arrive
    if (!offerTick) offerTick = setInterval(tickOffers, 1000);
    tickOffers();
    updateTitle();
    renderLists();
    if (!fresh) return;
    if (o.cid === selected) renderHeader();
    const name = (c.contact && c.contact.name) || "Visitor";
    announce("New chat offer from " + name + ". Accept or decline within " + Math.ceil((o.expires - now) / 1000) + " seconds.");
    const active = document.activeElement;
    if (!active || active === document.body) o.node.querySelector(".offer-accept").focus(); // never steal focus
  }

  function renderOffer(o) {
    const c = convs.get(o.cid) || { id: o.cid };
    const name = (c.contact && c.contact.name) || "Visitor";
    if (!o.node) {
      const id = "offer-" + o.n;
      o.node = el("article", {
        class: "offer", role: "alertdialog", "aria-modal": "false", "aria-labelledby": id + "-k " + id + "-t",
        "aria-describedby": id + "-d", "data-offer": o.id
      }, [
        el("div", { class: "offer-head" }, [
          el("span", { class: "avatar", "aria-hidden": "true" }),
          el("div", { class: "offer-who" }, [
            el("p", { id: id + "-k", class: "offer-kicker", text: "New chat offer" }),
            el("h2", { id: id + "-t", class: "offer-name" })
          ]),
          el("span", { class: "offer-time", role: "timer", "aria-label": "Time left to answer" })
        ]),
        el("div", { id: id + "-d", class: "offer-body" }, [el("p", { class: "offer-preview" }), el("dl", { class: "offer-facts" })]),
        el("div", { class: "offer-bar", "aria-hidden": "true" }, [el("span")]),
        el("p", { class: "offer-status", hidden: true }),
        el("div", { class: "offer-actions" }, [
          el("button", { type: "button", class: "btn primary offer-accept", onclick: () => answerOffer(o, true) }, [
            el("span", { text: "Accept" })
          ]),
          el("button", { type: "button", class: "btn offer-decline", onclick: () => answerOffer(o, false) }, [
            el("span", { text: "Decline" })
          ])
        ])
      ]);
      o.node.addEventListener("keydown", (e) => {
        if (e.key === "Escape" && document.activeElement && o.node.contains(document.activeElement)) {
          e.preventDefault();
          ($("reply").offsetParent ? $("reply") : $("status")).focus(); // leave the card; it stays
        }
      });
      $("offers").appendChild(o.node);
    }
    const node = o.node;
    node.querySelector(".avatar").textContent = initial(name);
    node.querySelector(".offer-name").textContent = name;
    node.querySelector(".offer-accept").setAttribute("aria-label", "Accept the chat with " + name);
    node.querySelector(".offer-decline").setAttribute("aria-label", "Decline the chat with " + name);
    // the visitor's first message, in the agent's language when it is translated already
    const list = (msgs.get(o.cid) || []).filter((m) => m.kind === "text" && m.author && m.author.kind === "contact");
    const preview = node.querySelector(".offer-preview");
    const first = list[0];
    const tr = first && first.translations && first.translations[myLang()];
    preview.textContent = first ? (tr != null && first.lang !== myLang() ? tr : first.text) : "No message yet.";
    preview.lang = first ? (tr != null && first.lang !== myLang() ? myLang() : first.lang || "") : "";
    preview.classList.toggle("muted", !first);
    if (list.length > 1) preview.appendChild(el("span", { class: "offer-more", text: " +" + (list.length - 1) + " more" }));
    const facts = node.querySelector(".offer-facts");
    facts.textContent = "";
    const rows = [];
    if (c.language) rows.push(["Language", langName(c.language)]);
    if (c.team) rows.push(["Team", teams.get(c.team) || c.team]);
    const skills = Object.keys(c.skills || {});
    if (skills.length) rows.push(["Skills", skills.map((k) => k + " ≥ " + c.skills[k]).join(", ")]);
    if (c.priority) rows.push(["Priority", String(c.priority)]);
    for (const k in c.fields || {}) rows.push([k, String(c.fields[k])]);
    for (const [k, v] of rows.slice(0, 8)) facts.append(el("dt", { text: k }), el("dd", { text: v }));
    show(facts, rows.length > 0);
  }

  function startBar(o) {
    const bar = o.node.querySelector(".offer-bar span");
    const left = Math.max(0, o.expires - Date.now());
    bar.style.animation = "none";
    void bar.offsetWidth; // restart the animation
    bar.style.setProperty("--from", String(Math.min(1, left / o.total)));
    bar.style.animation = "";
    bar.style.animationDuration = left + "ms";
  }

  function tickOffers() {
    const now = Date.now();
    for (const o of [...offers.values()]) {
      const left = Math.ceil((o.expires - now) / 1000);
      const time = o.node.querySelector(".offer-time");
      time.textContent = left > 0 ? (left >= 60 ? Math.floor(left / 60) + ":" + String(left % 60).padStart(2, "0") : left + " s") : "Time's up";
      o.node.classList.toggle("urgent", left <= 5);
      if (!o.busy) o.node.querySelector(".offer-accept").disabled = left <= 0 || !ready();
      // the server withdraws an expired offer at once; if that never arrives (connection lost), drop it
      if (now - o.expires > 10000) removeOffer(o.id);
    }
    if (!offers.size) {
      clearInterval(offerTick);
      offerTick = 0;
    }
  }

  function setOfferBusy(o, text) {
    o.busy = !!text;
    const status = o.node.querySelector(".offer-status");
    status.textContent = text || "";
    show(status, !!text);
    o.node.querySelector(".offer-accept").disabled = !!text;
    o.node.querySelector(".offer-decline").disabled = !!text;
    o.node.setAttribute("aria-busy", text ? "true" : "false");
  }

  function answerOffer(o, accept) {
    if (o.busy || !offers.has(o.id)) return;
    const c = convs.get(o.cid);
    const name = (c && c.contact && c.contact.name) || "Visitor";
    setOfferBusy(o, accept ? "Accepting…" : "Declining…");
    request({ type: accept ? "offer.accept" : "offer.decline", offer_id: o.id }).then(
      async (a) => {
        removeOffer(o.id);
        if (!accept) return announce("Declined the chat with " + name + ".");
        announce("Accepted: the chat with " + name + " is open.");
        await select(a.conversation_id || o.cid);
        if (selected === (a.conversation_id || o.cid)) $("reply").focus();
      },
      (err) => {
        if (err.code === "conflict" || err.code === "forbidden" || err.code === "not_found") {
          removeOffer(o.id);
          toast((accept ? "Could not accept: " : "Could not decline: ") + err.message);
        } else {
          setOfferBusy(o, null);
          toast("Could not answer the offer: " + err.message);
          tickOffers();
        }
      }
    );
  }

  function removeOffer(id) {
    const o = offers.get(id);
    if (!o) return;
    offers.delete(id);
    const hadFocus = o.node.contains(document.activeElement);
    o.node.remove();
    if (hadFocus) {
      const next = $("offers").querySelector(".offer-accept:not(:disabled)");
      if (next) next.focus();
      else if ($("reply").offsetParent) $("reply").focus();
    }
    if (!offers.size) tickOffers();
    updateTitle();
    renderLists();
    if (o.cid === selected && convs.has(selected)) renderHeader();
  }

  function clearOffers() {
    for (const id of [...offers.keys()]) removeOffer(id);
  }

  function onOfferRevoked(f) {
    const o = offers.get(f.offer_id);
    if (!o) return;
    const c = convs.get(o.cid);
    const name = (c && c.contact && c.contact.name) || "the visitor";
    removeOffer(o.id);
    toast(f.reason === "expired"
      ? "The chat offer from " + name + " expired."
      : f.reason === "escalated"
        ? "The chat offer from " + name + " was withdrawn: it is pending now."
        : f.reason === "assigned"
          ? "The chat offer from " + name + " was withdrawn: a supervisor assigned it."
          : "The chat offer from " + name + " was withdrawn.");
  }

  // notices: "rona" (set away after missed offers) is a banner until the agent is online again
  function onNotice(f) {
    if (f.code === "rona") return showRona(f.message);
    if (f.code === "profile") return refreshMe();
    if (f.message) toast(f.message);
  }
  async function refreshMe() {
    const r = await api("GET", "/api/v1/auth/me");
    if (!r.ok || !me || r.data.agent.id !== me.id) return;
    me = Object.assign(me, r.data.agent);
    $("me-name").textContent = me.name;
    if (selected) renderHeader();
  }

  function showRona(text) {
    $("rona-text").textContent = text || "You were set to away after offers went unanswered.";
    $("go-online").disabled = false;
    show($("rona"), true);
    setStatusPick("away");
  }
  function hideRona() {
    if ($("rona").hidden) return;
    const hadFocus = $("rona").contains(document.activeElement);
    show($("rona"), false);
    if (hadFocus) $("status").focus();
  }
  $("go-online").addEventListener("click", () => {
    const btn = $("go-online");
    btn.disabled = true;
    request({ type: "status.set", status: "online" }).then(
      () => {
        setStatusPick("online");
        hideRona();
        announce("You are online: conversations are offered to you again.");
      },
      (err) => {
        btn.disabled = false;
        toast("Could not go online: " + err.message);
      }
    );
  });
  $("rona-dismiss").addEventListener("click", () => hideRona());

  // "Assign to…" (supervisors: claim for someone) and "Transfer" (to an online agent or a team)
  const handoff = { mode: null, cid: null, opener: null };

  function openHandoff(mode) {
    if (handoff.mode === mode) return closeHandoff(true);
    closeHandoff(false);
    Object.assign(handoff, { mode, cid: selected, opener: $(mode) });
    $(mode).setAttribute("aria-expanded", "true");
    $("handoff-label").textContent = mode === "assign" ? "Assign to" : "Transfer to";
    $("handoff-go").textContent = mode === "assign" ? "Assign" : "Transfer";
    $("handoff-note").textContent = mode === "assign"
      ? "The conversation becomes theirs at once."
      : "It goes back to the queue and is offered to them; until they accept, nobody is assigned.";
    show($("handoff-error"), false);
    fillHandoff();
    keepBottom(() => show($("handoff"), true));
    $("handoff-to").focus();
    // fresh statuses and teams (presence frames keep them current while the panel is open)
    Promise.all([loadTeam(), mode === "transfer" ? loadTeams() : true]).then(() => {
      if (handoff.mode === mode && handoff.cid === selected) fillHandoff();
    });
  }

  function closeHandoff(focusOpener) {
    if (!handoff.mode) return;
    const opener = handoff.opener;
    opener.setAttribute("aria-expanded", "false");
    Object.assign(handoff, { mode: null, cid: null, opener: null });
    $("handoff-go").disabled = false;
    keepBottom(() => show($("handoff"), false));
    if (focusOpener && !opener.hidden) opener.focus();
  }

  function fillHandoff() {
    const sel = $("handoff-to");
    const keep = sel.value;
    const c = convs.get(handoff.cid) || {};
    const assignee = c.assignee && c.assignee.id;
    const order = { online: 0, away: 1, offline: 2 };
    const people = [...agents.entries()]
      .filter(([id, a]) => id !== (me && me.id) && id !== assignee && (handoff.mode === "assign" || a.status === "online"))
      .sort((x, y) => (order[x[1].status] ?? 3) - (order[y[1].status] ?? 3) || x[1].name.localeCompare(y[1].name));
    sel.textContent = "";
    sel.appendChild(el("option", { value: "", text: handoff.mode === "assign" ? "Choose an agent…" : "Choose an agent or a team…" }));
    if (people.length) {
      const group = el("optgroup", { label: handoff.mode === "assign" ? "Agents" : "Online agents" });
      for (const [id, a] of people) {
        group.appendChild(el("option", { value: "agent:" + id, text: a.name + (handoff.mode === "assign" ? " (" + a.status + ")" : "") }));
      }
      sel.appendChild(group);
    }
    if (handoff.mode === "transfer" && teams.size) {
      const group = el("optgroup", { label: "Teams" });
      for (const [id, name] of [...teams.entries()].sort((x, y) => x[1].localeCompare(y[1]))) {
        group.appendChild(el("option", { value: "team:" + id, text: name }));
      }
      sel.appendChild(group);
    }
    if ([...sel.options].some((o) => o.value === keep)) sel.value = keep;
    if (sel.options.length === 1) {
      sel.options[0].textContent = handoff.mode === "assign" ? "No other agent" : "No other agent is online, and there are no teams";
    }
  }

  $("assign").addEventListener("click", () => openHandoff("assign"));
  $("transfer").addEventListener("click", () => openHandoff("transfer"));
  $("handoff-cancel").addEventListener("click", () => closeHandoff(true));
  $("handoff").addEventListener("keydown", (e) => {
    if (e.key === "Escape") {
      e.preventDefault();
      closeHandoff(true);
    }
  });
  $("handoff-to").addEventListener("change", () => show($("handoff-error"), false));
  $("handoff").addEventListener("submit", (e) => {
    e.preventDefault();
    const { mode, cid } = handoff;
    const sel = $("handoff-to");
    const err = $("handoff-error");
    if (!mode || !cid) return;
    const choice = sel.value;
    if (!choice) {
      err.textContent = mode === "assign" ? "Choose an agent." : "Choose an agent or a team.";
      show(err, true);
      return sel.focus();
    }
    const [kind, id] = [choice.slice(0, choice.indexOf(":")), choice.slice(choice.indexOf(":") + 1)];
    const label = sel.selectedOptions[0].textContent.replace(/ \((online|away|offline)\)$/, "");
    const frame = mode === "assign"
      ? { type: "conversation.claim", conversation_id: cid, agent_id: id }
      : Object.assign({ type: "conversation.transfer", conversation_id: cid }, kind === "team" ? { team: id } : { agent_id: id });
    const go = $("handoff-go");
    go.disabled = true;
    show(err, false);
    request(frame).then(
      () => {
        if (handoff.cid === cid) closeHandoff(false);
        toast(mode === "assign"
          ? "Assigned to " + label + "."
          : kind === "team"
            ? "Transferred to the " + label + " team: an agent there gets an offer."
            : "Transferred to " + label + ": they get an offer.");
      },
      (e2) => {
        go.disabled = false;
        if (handoff.cid !== cid) return toast((mode === "assign" ? "Could not assign: " : "Could not transfer: ") + e2.message);
        err.textContent = (mode === "assign" ? "Could not assign: " : "Could not transfer: ") + e2.message;
        show(err, true);
        sel.focus();
        if (e2.code === "unavailable" || e2.code === "not_found") {
          loadTeam().then(() => { if (handoff.cid === cid) fillHandoff(); }); // refresh who is online
        }
      }
    );
  });

  // -- boot ------------------------------------------------------------------------------------------------
  (async () => {
    const r = await api("GET", "/api/v1/auth/me");
    if (r.ok) startApp(r.data);
    else showLogin(r.status === 401 || r.status === 403 ? "" : r.error.message);
  })();
})();
