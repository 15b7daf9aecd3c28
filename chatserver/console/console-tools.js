/* chatserver agent console: canned responses, "Translate draft" and the conversation's language (see console.js). */
"use strict";

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
