/* chatserver agent console: the queue summary (`queue` frames) (see console.js). */
"use strict";

// The waiting queue in brief. A plain agent with routing on is offered conversations one at a time, so the
// server sends it only its offers, its own conversations and the pending ones (anyone may take those), plus
// `queue` frames: how many wait, per team, and since when. Supervisors, and everyone with manual routing,
// get every waiting conversation as well and keep the full Waiting list.
let queueSummary = null; // the last `queue` frame

const watchesQueue = () => !!(supervises() || routing === "manual");

function onQueue(f) {
  queueSummary = f;
  renderLists();
}

function waitText(iso) {
  const s = (Date.now() - Date.parse(iso)) / 1000;
  return s >= 60 ? ago(iso) : "under a minute";
}

function teamName(id) {
  return id == null ? "No team" : teams.get(id) || "Team";
}

function renderQueueSummary() {
  const node = $("queue-summary");
  const q = queueSummary;
  show(node, !!q);
  if (!q) return;
  const line = q.waiting ? q.waiting + " waiting · longest " + waitText(q.oldest_at) : "Nobody is waiting";
  const parts = [el("span", { class: "qs-total", text: line })];
  const teamed = (q.teams || []).filter((t) => t.waiting);
  if (teamed.length > 1 || teamed.some((t) => t.team != null)) {
    parts.push(el("ul", { class: "qs-teams", "aria-label": "Waiting per team" }, teamed.map((t) =>
      el("li", { text: teamName(t.team) + ": " + t.waiting + (t.pending ? " (" + t.pending + " pending)" : "") }))));
  }
  node.replaceChildren(...parts);
}

// The Waiting list's count: what the list shows when the queue is watched, else the summary's count.
function waitingCount(listed) {
  return watchesQueue() || !queueSummary ? listed : queueSummary.waiting;
}
