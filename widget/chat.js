/*! chatserver widget UI, loaded by loader.js into its Shadow DOM after its helpers (dom.js, i18n.js,
 * translate.js, panels.js, flow.js, files.js, session.js, status.js, log.js, header.js). Plain modern JS, no
 * dependencies.
 *
 * It starts once the visitor's catalogue (i18n/<lang>.json) and the inbox's settings
 * (GET /api/v1/widget/config, in that language) are in; JavaScript settings override the inbox's.
 * State kept in localStorage under "chatserver:<inbox key>": the visitor token, the current conversation,
 * per-conversation cursors (highest seq received), a cache of recent messages, the agent's read cursor,
 * messages not yet acknowledged, the pre-chat answers and the ratings given. A reload renders the cache,
 * then `resume` fetches exactly what was missed. Translations are cached with the messages (translate.js).
 * User content is only ever set with textContent.
 */
(function (w, d) {
  "use strict";
  const api = w.Chatserver;
  if (!api || !api._root || api._ready || !api._m) return;
  api._ready = true;
  const M = api._m;
  const LANG = M.i18n.pick(api._cfg);

  // the catalogue of the visitor's language and the inbox's settings (in that language), in parallel
  const inboxConfig = () =>
    fetch(api._cfg.server + "/api/v1/widget/config?inbox_key=" + encodeURIComponent(api._cfg.inboxKey) +
      "&lang=" + LANG, { credentials: "omit" }).then(
      (r) => (r.ok ? r.json() : r.status === 403 || r.status === 404 ? { refused: r.status } : {}),
      () => ({})
    );
  Promise.all([M.i18n.load(api._cfg.assets, LANG), inboxConfig()]).then(([cat, sc]) => main(cat, sc || {}));

  function main(CAT, SC) {
    const cfg = api._cfg;
    const root = api._root;
    const host = api._host;
    const SERVER = cfg.server;
    const STORE_KEY = "chatserver:" + cfg.inboxKey;
    const MAX_CACHE = 200;
    const RENEW_MS = 3 * 24 * 3600 * 1000; // renew the visitor token when it expires within 3 days
    const SLOW = [4008, 4408];
    const RETRYABLE = ["provider_unavailable", "quota_exceeded", "bad_response"]; // the server retries these

    const T = Object.assign(
      {},
      CAT,
      SC.title ? { title: SC.title } : {},
      SC.subtitle ? { subtitle: SC.subtitle } : {},
      SC.greeting != null ? { greeting: SC.greeting } : {},
      cfg.title ? { title: cfg.title } : {},
      cfg.subtitle ? { subtitle: cfg.subtitle } : {},
      cfg.greeting !== undefined ? { greeting: cfg.greeting } : {},
      cfg.strings || {}
    );
    const fill = M.i18n.fill;
    const { el, icon, I_CHAT, I_X, I_DOWN, I_SEND } = M.dom;
    const TIME = M.i18n.timeFmt(LANG);
    const position = cfg.position || SC.position || "right";
    const color = cfg.color || SC.color;
    const prechatFields = Array.isArray(cfg.prechat) ? cfg.prechat : SC.prechat || [];

    // -- persistent state --------------------------------------------------------------------------------
    const blank = () => ({
      v: 1, token: null, exp: 0, contact: null, cid: null,
      cur: {}, msgs: {}, status: {}, agent: {}, read: {}, seen: {}, lang: {}, out: [],
      reason: {}, rated: {}, pre: null, email: null, attrs: {}, face: {}
    });
    let st = blank();
    const queue = {}; // conversation id -> {position, estimated_wait_s} while it waits (from the router)
    try {
      const raw = JSON.parse(localStorage.getItem(STORE_KEY) || "null");
      if (raw && raw.v === 1) st = Object.assign(blank(), raw);
    } catch (e) { /* storage disabled or corrupt: start fresh */ }
    st.out.forEach((o) => { o.inflight = false; });

    function save() {
      for (const cid in st.msgs) if (st.msgs[cid].length > MAX_CACHE) st.msgs[cid] = st.msgs[cid].slice(-MAX_CACHE);
      try {
        localStorage.setItem(STORE_KEY, JSON.stringify(st, (k, v) => (k === "inflight" ? undefined : v)));
      } catch (e) { /* quota or disabled: keep going in memory */ }
    }
    const msgsOf = (cid) => st.msgs[cid] || (st.msgs[cid] = []);
    const hasSeq = (cid, seq) => msgsOf(cid).some((m) => m.seq === seq);

    const fmtTime = (iso) => M.i18n.time(TIME, iso);

    // -- the UI --------------------------------------------------------------------------------------------
    if (color && w.CSS && CSS.supports("color", color)) host.style.setProperty("--cs-accent", color);

    const faces = M.header({ server: SERVER, faces: SC.faces }); // header.js
    const closeBtn = el("button", { type: "button", class: "icon-btn", "aria-label": T.close }, [icon(I_X)]);
    const titleEl = el("h2", { class: "title", id: "cs-title", text: T.title });
    const subEl = el("p", { class: "sub", text: T.subtitle });
    const conn = el("div", { class: "conn", role: "status", hidden: true });
    const log = el("div", { class: "log", role: "log", "aria-live": "polite", "aria-label": T.log, tabindex: "0" });
    const typingText = el("span");
    const typing = el("div", { class: "typing", "aria-live": "polite", hidden: true }, [
      el("span", { class: "dots", "aria-hidden": "true" }, [el("i"), el("i"), el("i")]),
      typingText
    ]);
    const input = el("textarea", { id: "cs-input", rows: "1", placeholder: T.placeholder, autocomplete: "off" });
    const sendBtn = el("button", { type: "submit", class: "send", "aria-label": T.send }, [icon(I_SEND)]);
    // composerTools: the composer's buttons (files.js: attach), shown once there is a conversation
    const composerTools = el("div", { class: "tools", hidden: true });
    const form = el("form", { class: "composer" }, [
      el("label", { for: "cs-input", class: "sr", text: T.label }),
      composerTools,
      input,
      sendBtn
    ]);
    const panel = el("section", {
      class: "panel", id: "cs-panel", role: "dialog", "aria-label": T.title, "aria-modal": "false", hidden: true
    }, [
      el("header", { class: "head" }, [
        faces.box,
        el("div", { class: "titles" }, [titleEl, subEl]),
        closeBtn
      ]),
      conn,
      log,
      typing,
      form
    ]);
    const badge = el("span", { class: "badge", hidden: true });
    const launcher = el("button", {
      type: "button", class: "launcher", "aria-label": T.open, "aria-expanded": "false", "aria-controls": "cs-panel"
    }, [el("span", { class: "i-open" }, [icon(I_CHAT)]), el("span", { class: "i-close" }, [icon(I_DOWN)]), badge]);
    const dark = cfg.theme === "dark" || (cfg.theme === "auto" && w.matchMedia && matchMedia("(prefers-color-scheme: dark)").matches);
    const wrap = el("div", { class: "cs" + (position === "left" ? " left" : "") + (dark ? " dark" : ""), hidden: true, dir: M.i18n.rtl(LANG) ? "rtl" : "ltr", lang: LANG }, [
      panel,
      launcher
    ]);
    root.appendChild(wrap);

    const sheet = root.querySelector("link[rel=stylesheet]");
    const reveal = () => { wrap.hidden = false; };
    if (!sheet || sheet.sheet) reveal();
    else { sheet.addEventListener("load", reveal); sheet.addEventListener("error", reveal); }

    // -- the message log (log.js) ---------------------------------------------------------------------------
    const nodes = new Map(); // "s<seq>" or "p<client_id>" -> element
    const receipt = el("span", { class: "receipt" });
    let me = null;

    const isMine = (m) => m.author && m.author.kind === "contact";
    const view = M.log({
      T, log, nodes, isMine, fmtTime, st: () => st, me: () => me, fileUI: () => fileUI, flow: () => flow,
      paintTr: (row, m) => paintTr(row, m), retrySend: (o) => retrySend(o), updateReceipt: () => updateReceipt()
    });
    const { showMessage, showPending, nearBottom, scrollBottom } = view;

    // -- translations (translate.js) ------------------------------------------------------------------------
    const tx = M.translations({
      st: () => st, T, nodes, nearBottom, scrollBottom, save, emit: (e, x) => emit(e, x), msgsOf, isMine, locale: () => locale()
    });
    const { paintTr, repaint, merge, onTranslated } = tx;
    const flow = M.flow({
      st: () => st, T, SERVER, log, form, input, panel, root, prechat: prechatFields, save, msgsOf, isMine,
      ensureSession: () => ensureSession(), request: (f) => request(f), send: (f) => send(f),
      closedNow: () => SC.open === false
    });
    const fileUI = M.files({ T, SERVER, input, st: () => st, ensureSession: () => ensureSession(), enqueue: (o) => enqueue(o) });
    composerTools.append(fileUI.button, fileUI.picker);
    form.before(fileUI.status);

    function renderAll() {
      nodes.clear();
      log.textContent = "";
      if (T.greeting) {
        log.appendChild(el("div", { class: "msg them greet" }, [el("div", { class: "bubble", text: T.greeting })]));
      }
      if (st.cid) for (const m of msgsOf(st.cid)) showMessage(st.cid, m, false);
      for (const o of st.out) showPending(o);
      composerTools.hidden = !st.cid;
      updateReceipt();
      updateHeader();
      flow.refresh();
      scrollBottom();
    }

    // -- receipt, header, badge, typing (status.js) ------------------------------------------------------------
    const ui = M.status({
      st: () => st, T, nodes, receipt, subEl, badge, launcher, typing, typingText, queue, msgsOf, isMine,
      isOpen: () => isOpen, emit: (e, x) => emit(e, x), nearBottom, scrollBottom
    });
    const { updateReceipt, updateBadge, showTyping } = ui;
    function updateHeader() {
      ui.updateHeader();
      const cid = st.cid;
      const name = cid && st.status[cid] === "assigned" ? st.agent[cid] : null;
      faces.update(name ? { name, avatar_url: st.face[cid] || null } : null);
    }

    // -- open / close / events -------------------------------------------------------------------------------
    let isOpen = false;
    const listeners = {};
    function emit(ev, data) {
      for (const fn of (listeners[ev] || []).slice()) {
        try { fn(data); } catch (e) { if (w.console) w.console.error(e); }
      }
    }
    function setOpenFlag(v) {
      try { sessionStorage.setItem(STORE_KEY + ":open", v ? "1" : ""); } catch (e) { /* ignore */ }
    }

    function open(focus) {
      if (isOpen) return;
      isOpen = true;
      panel.hidden = false;
      wrap.classList.add("open");
      launcher.setAttribute("aria-expanded", "true");
      setOpenFlag(true);
      scrollBottom();
      markSeen();
      updateBadge();
      if (focus !== false) input.focus();
      connect();
      emit("open", {});
    }
    function close() {
      if (!isOpen) return;
      const hadFocus = root.activeElement && panel.contains(root.activeElement);
      isOpen = false;
      panel.hidden = true;
      wrap.classList.remove("open");
      launcher.setAttribute("aria-expanded", "false");
      setOpenFlag(false);
      stopTyping();
      updateBadge();
      if (hadFocus) launcher.focus();
      emit("close", {});
    }

    launcher.addEventListener("click", () => (isOpen ? close() : open(true)));
    closeBtn.addEventListener("click", close);
    root.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && isOpen) {
        e.preventDefault();
        close();
        launcher.focus();
      }
    });

    // -- composer --------------------------------------------------------------------------------------------
    function grow() {
      input.style.height = "auto";
      input.style.height = Math.min(input.scrollHeight, 120) + "px";
    }
    let typingOn = false;
    let typingAt = 0;
    let typingStop = 0;
    function stopTyping() {
      clearTimeout(typingStop);
      if (typingOn && ready() && st.cid) send({ type: "typing", conversation_id: st.cid, state: "stop" });
      typingOn = false;
    }
    input.addEventListener("input", () => {
      grow();
      if (!st.cid || !ready()) return;
      if (!input.value.trim()) return stopTyping();
      const now = Date.now();
      if (!typingOn || now - typingAt > 3000) {
        send({ type: "typing", conversation_id: st.cid, state: "start" });
        typingOn = true;
        typingAt = now;
      }
      clearTimeout(typingStop);
      typingStop = setTimeout(stopTyping, 4000);
    });
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        form.requestSubmit();
      }
    });
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const text = input.value.trim();
      if (!text || stopped) return;
      input.value = "";
      grow();
      stopTyping();
      enqueue({ text });
    });
    function enqueue(o) { // a message to send (text, or files from files.js): queued, shown, sent when connected
      const item = Object.assign({ client_id: M.dom.uid(), created_at: new Date().toISOString() }, o);
      st.out.push(item);
      save();
      showPending(item);
      scrollBottom();
      connect();
      flush();
    }

    function retrySend(item) {
      item.failed = false;
      item.error = null;
      save();
      showPending(item);
      connect();
      flush();
    }

    // -- the connection --------------------------------------------------------------------------------------
    let ws = null;
    let connecting = false;
    let attempt = 0;
    let retryTimer = 0;
    let connTimer = 0;
    let beat = 0;
    let lastRx = 0;
    let stopped = false;
    let everConnected = false;
    let refSeq = 0;
    let starting = false;
    const refs = new Map();
    const readSent = {};

    const ready = () => !!(ws && ws.readyState === 1 && me);
    const wanted = () => isOpen || !!st.cid || st.out.length > 0;

    function send(frame) {
      if (ws && ws.readyState === 1) ws.send(JSON.stringify(frame));
    }
    function request(frame) {
      return new Promise((resolve, reject) => {
        frame.ref = "w" + ++refSeq;
        refs.set(frame.ref, { resolve, reject });
        send(frame);
      });
    }

    function setConn(text, delay) {
      clearTimeout(connTimer);
      if (!text) {
        conn.hidden = true;
        return;
      }
      connTimer = setTimeout(() => {
        conn.textContent = text;
        conn.hidden = false;
      }, delay || 0);
    }

    function locale() {
      return String(cfg.locale || "").replace(/[^A-Za-z0-9_-]/g, "").slice(0, 35);
    }

    // the visitor token (session.js): `sess.renew = true` makes the next connect get a new one
    const sess = M.session({
      cfg, SERVER, RENEW_MS, locale, st: () => st, save,
      restart: (out) => { st = blank(); st.out = out; renderAll(); }
    });
    const ensureSession = () => sess.ensure();

    // the browser says it is offline: no connection attempt until its `online` event
    const offline = () => w.navigator.onLine === false;

    function connect() {
      if (ws || connecting || stopped) return;
      clearTimeout(retryTimer);
      if (offline()) return setConn(T.reconnecting);
      connecting = true;
      if (!everConnected) setConn(T.connecting, 1500);
      ensureSession().then(
        () => {
          connecting = false;
          if (ws || stopped) return;
          // the token travels as a subprotocol, never in the URL (URLs end up in logs)
          const sock = new WebSocket(SERVER.replace(/^http/, "ws") + "/ws/visitor", ["chatserver.v1", "token." + st.token]);
          ws = sock;
          sock.onmessage = (e) => { if (ws === sock) onFrame(e.data); };
          sock.onclose = (e) => { if (ws === sock) onClose(e.code); };
        },
        (err) => {
          connecting = false;
          if (err && err.fatal) halt();
          else retry(backoff());
        }
      );
    }

    function backoff() {
      const base = Math.min(30000, 1000 * Math.pow(2, attempt++));
      return base / 2 + Math.random() * (base / 2); // exponential backoff with jitter
    }
    function retry(delay) {
      clearTimeout(retryTimer);
      if (stopped || !wanted()) return;
      setConn(T.reconnecting, attempt > 1 || offline() ? 0 : 1500);
      if (!offline()) retryTimer = setTimeout(connect, delay);
    }

    function drop(sock) {
      // a dead connection (no frames, no close): stop waiting for it and reconnect now
      if (ws !== sock) return;
      sock.onclose = null;
      try { sock.close(); } catch (e) { /* already closed */ }
      onClose(1006);
    }

    function onClose(code) {
      ws = null;
      me = null;
      clearInterval(beat);
      starting = false;
      for (const [, p] of refs) p.reject({ code: "disconnected" });
      refs.clear();
      st.out.forEach((o) => { o.inflight = false; });
      showTyping("", false);
      if (code === 4403) return halt();
      if (code === 4401) {
        sess.renew = true; // the token is no longer accepted: get a new visitor session
        return retry(attempt ? backoff() : 0);
      }
      if (SLOW.includes(code)) return retry(Math.random() * 1000); // too slow: reconnect and resume
      if (code === 4429) attempt += 2;
      retry(backoff());
    }

    function halt() {
      stopped = true;
      clearTimeout(retryTimer);
      setConn(T.unavailable);
      input.disabled = true;
      sendBtn.disabled = true;
    }

    function onFrame(text) {
      let f;
      try { f = JSON.parse(text); } catch (e) { return; }
      lastRx = Date.now();
      switch (f.type) {
        case "hello": return onHello(f);
        case "conversation": return onConversation(f.conversation);
        case "message": return onMessage(f);
        case "message.translated": return onTranslated(f);
        case "ack":
        case "error": {
          const p = f.ref != null && refs.get(f.ref);
          if (p) {
            refs.delete(f.ref);
            if (f.type === "ack") p.resolve(f);
            else p.reject(f);
          }
          return;
        }
        case "typing":
          if (f.conversation_id === st.cid && f.author && f.author.kind !== "contact") {
            showTyping(f.author.name, f.state === "start");
          }
          return;
        case "read":
          if (f.reader && f.reader.kind !== "contact" && f.seq > (st.read[f.conversation_id] || 0)) {
            st.read[f.conversation_id] = f.seq;
            save();
            updateReceipt();
          }
          return;
        case "resumed":
          for (const cid of f.unknown || []) forget(cid);
          return;
      }
    }

    function onHello(f) {
      me = f.you;
      attempt = 0;
      everConnected = true;
      setConn(null);
      const hb = Math.max(5, +f.heartbeat_s || 20) * 1000;
      const sock = ws;
      clearInterval(beat);
      beat = setInterval(() => {
        if (Date.now() - lastRx > hb * 2.5) drop(sock);
        else send({ type: "ping" });
      }, hb);
      const cursors = {};
      for (const cid in st.cur) cursors[cid] = st.cur[cid];
      if (st.cid && cursors[st.cid] == null) cursors[st.cid] = 0;
      for (const cid in cursors) {
        // a translation that failed may have been filled in while this page was away: fetch those again
        const l = st.lang[cid];
        const late = l && msgsOf(cid).slice(-30).find((m) => m.un && RETRYABLE.includes(m.un[l]) && !(m.tr && m.tr[l] != null));
        if (late) cursors[cid] = Math.min(cursors[cid], late.seq - 1);
      }
      send({ type: "resume", ref: "resume", cursors }); // first, even empty: it places the live stream
      flush();
      markSeen();
    }

    function adopt(cid) {
      if (st.cid === cid) return;
      st.cid = cid;
      if (st.cur[cid] == null) {
        st.cur[cid] = 0;
        if (ready()) send({ type: "resume", ref: "adopt", cursors: { [cid]: 0 } });
      }
      save();
      renderAll();
    }

    function forget(cid) {
      for (const k of ["cur", "msgs", "status", "agent", "face", "read", "seen", "lang"]) delete st[k][cid];
      if (st.cid === cid) {
        st.cid = null;
        renderAll();
      }
      save();
    }

    function onConversation(c) {
      if (!c || !c.id) return;
      st.status[c.id] = c.status;
      st.agent[c.id] = c.assignee ? c.assignee.name : null;
      st.face[c.id] = c.assignee && typeof c.assignee.avatar_url === "string" ? c.assignee.avatar_url : null;
      if (c.queue) queue[c.id] = c.queue;
      else if (c.status !== "queued" && c.status !== "offered") delete queue[c.id];
      const langChanged = (st.lang[c.id] || null) !== (c.language || null);
      st.lang[c.id] = c.language || null;
      st.reason[c.id] = c.pending_reason || null;
      for (const r of c.reads || []) {
        if (r.reader && r.reader.kind !== "contact" && r.seq > (st.read[c.id] || 0)) st.read[c.id] = r.seq;
      }
      const current = st.cid && st.status[st.cid];
      if (!st.cid || (current === "resolved" && c.status !== "resolved")) adopt(c.id);
      else if (langChanged && c.id === st.cid) for (const m of msgsOf(c.id)) repaint(c.id, m);
      save();
      updateHeader();
      updateReceipt();
      flow.refresh();
    }

    function onMessage(f) {
      const m = f.message;
      const cid = f.conversation_id;
      if (!m || m.kind === "note") return; // never sent to visitors; be safe anyway
      if (f.seq > (st.cur[cid] || 0)) st.cur[cid] = f.seq;
      if (!st.cid) adopt(cid);
      if (m.client_id && isMine(m)) dropPending(m.client_id);
      const fresh = addMessage(cid, Object.assign({ seq: f.seq }, m));
      if (fresh && !isMine(m)) showTyping("", false);
      if (fresh) emit("message", publicMessage(cid, f.seq, m));
      markSeen();
      updateBadge();
      save();
    }

    function publicMessage(cid, seq, m) {
      return {
        conversationId: cid, seq, id: m.id, kind: m.kind, text: m.kind === "event" ? M.log.eventText(T, m) : m.text,
        author: m.author, createdAt: m.created_at, code: (m.event && m.event.code) || null,
        lang: m.lang || null, translations: isMine(m) ? {} : Object.assign({}, m.translations)
      };
    }

    function addMessage(cid, m) {
      const list = msgsOf(cid);
      const old = list.find((x) => x.seq === m.seq);
      if (old) {
        // seen again (a resume): it may carry translations that arrived meanwhile
        if (!isMine(old) && merge(old, m.translations, m.untranslated)) repaint(cid, old);
        return false;
      }
      const msg = {
        seq: m.seq, id: m.id, kind: m.kind, text: m.text, author: m.author, created_at: m.created_at, client_id: m.client_id || null,
        lang: m.lang || null, actions: Array.isArray(m.actions) ? m.actions : undefined,
        event: m.event && typeof m.event === "object" ? m.event : undefined,
        attachments: Array.isArray(m.attachments) && m.attachments.length ? m.attachments : undefined
      };
      if (!isMine(m) && m.kind === "text") merge(msg, m.translations, m.untranslated);
      if (list.length && list[list.length - 1].seq > m.seq) {
        list.push(msg);
        list.sort((a, b) => a.seq - b.seq);
      } else list.push(msg);
      showMessage(cid, msg, true);
      return true;
    }

    function dropPending(clientId) {
      const i = st.out.findIndex((o) => o.client_id === clientId);
      if (i >= 0) st.out.splice(i, 1);
    }

    function flush() {
      if (!ready() || stopped) return;
      const items = st.out.filter((o) => !o.failed && !o.inflight);
      if (!items.length) return;
      if (!st.cid) {
        if (starting) return;
        starting = true;
        const lang = locale().split(/[-_]/)[0].toLowerCase();
        request({ type: "conversation.start", language: lang || undefined, fields: Object.assign({}, cfg.fields, st.attrs, st.pre) }).then(
          (a) => {
            starting = false;
            adopt(a.conversation_id);
            flush();
          },
          (err) => {
            starting = false;
            if (err.code !== "disconnected") items.forEach((o) => fail(o, err.message));
          }
        );
        return;
      }
      for (const item of items) {
        item.inflight = true;
        const files = item.attachments ? item.attachments.map((a) => a.id) : undefined;
        request({ type: "message.send", conversation_id: st.cid, client_id: item.client_id, text: item.text, attachments: files }).then(
          (a) => onAck(item, a),
          (err) => {
            item.inflight = false;
            if (err.code !== "disconnected") fail(item, err.message);
          }
        );
      }
    }

    function fail(item, message) {
      item.failed = true;
      item.inflight = false;
      item.error = message || "";
      save();
      showPending(item);
    }

    function onAck(item, a) {
      dropPending(item.client_id);
      addMessage(a.conversation_id, {
        seq: a.seq, id: a.message_id, kind: "text", text: item.text, client_id: item.client_id, attachments: item.attachments,
        author: me || { kind: "contact", id: st.contact, name: "" }, created_at: a.created_at
      });
      const stale = nodes.get("p" + item.client_id);
      if (stale) {
        stale.remove();
        nodes.delete("p" + item.client_id);
      }
      updateReceipt();
      save();
    }

    function markSeen() {
      if (!isOpen || d.visibilityState !== "visible" || !st.cid) return;
      const cur = st.cur[st.cid] || 0;
      if (cur > (st.seen[st.cid] || 0)) {
        st.seen[st.cid] = cur;
        save();
      }
      if (ready() && cur > (readSent[st.cid] || 0)) {
        readSent[st.cid] = cur;
        send({ type: "read", conversation_id: st.cid, seq: cur });
      }
      updateBadge();
    }

    d.addEventListener("visibilitychange", () => {
      if (d.visibilityState !== "visible") return;
      markSeen();
      if (!ws && wanted()) connect();
    });
    // offline, an open socket is dead (or will be, silently): close it now; what the visitor writes stays
    // queued (shown as sending) and goes out once, by client_id, when the browser is back online
    w.addEventListener("offline", () => { if (ws) drop(ws); });
    w.addEventListener("online", () => {
      if (!ws && wanted()) {
        attempt = 0;
        connect();
      }
    });

    // -- public API --------------------------------------------------------------------------------------------
    api.open = () => open(true);
    api.close = close;
    api.toggle = () => (isOpen ? close() : open(true));
    api.on = (ev, fn) => {
      if (typeof fn === "function") (listeners[ev] = listeners[ev] || []).push(fn);
      return api;
    };
    api.off = (ev, fn) => {
      listeners[ev] = fn ? (listeners[ev] || []).filter((f) => f !== fn) : [];
      return api;
    };
    // the site's backend vouches for its logged-in user (docs/protocol.md, "Identity"): a new session
    api.setUser = (u) => {
      cfg.user = u && typeof u === "object" ? Object.assign({}, u) : null;
      sess.renew = true;
      if (ws) drop(ws);
      else if (wanted()) connect();
    };
    api.reset = () => { // on logout: forget the visitor, their token and history on this device
      cfg.user = null;
      try { localStorage.removeItem(STORE_KEY); } catch (e) { /* ignore */ }
      st = blank();
      if (ws) { const s = ws; ws = null; me = null; s.onclose = null; s.close(); }
      renderAll();
      updateBadge();
    };
    api.setAttributes = (a) => { // extra routing fields for the next conversation (`fields`)
      if (a && typeof a === "object") st.attrs = Object.assign({}, st.attrs, a);
      save();
    };

    renderAll();
    updateBadge();
    const queued = api._queue.splice(0);
    let reopen = false;
    try { reopen = sessionStorage.getItem(STORE_KEY + ":open") === "1"; } catch (e) { /* ignore */ }
    if (cfg.open || reopen) open(false); // restored on navigation: do not steal the page's focus
    for (const [name, args] of queued) if (typeof api[name] === "function") api[name].apply(api, args);
    if (!ws && (st.cid || st.out.length)) connect();
    if (position === "left") { host.style.setProperty("left", "0", "important"); host.style.setProperty("right", "auto", "important"); }
    if (SC.refused) {
      if (w.console) w.console.warn("chatserver: this inbox refuses this page (" + SC.refused + "); see the server's log");
      halt();
    }
    emit("ready", {});
  }
})(window, document);
