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
 *
 * The console is plain scripts loaded in order by index.html (no build step), sharing one scope:
 * console.js (state, helpers, login), console-live.js (the socket and the lists), console-queue.js (the
 * queue summary), console-conversation.js (the open conversation), console-tools.js (canned responses,
 * draft translation, language), console-routing.js (offers, RONA) and console-handoff.js (assign,
 * transfer, and the boot, which runs last).
 */
"use strict";

const $ = (id) => document.getElementById(id);
const WAITING = new Set(["queued", "offered", "pending"]);
const SLOW = [4008, 4408];
const RESTART = [1001, 1012]; // going away / service restart: another process takes us at once
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
  queueSummary = null;
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
