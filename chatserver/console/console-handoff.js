/* chatserver agent console: "Assign to…" and "Transfer", and the boot (see console.js). */
"use strict";

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
