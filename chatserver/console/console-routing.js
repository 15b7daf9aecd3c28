/* chatserver agent console: routing: offers, the RONA notice (see console.js). */
"use strict";

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
