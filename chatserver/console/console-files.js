/* chatserver agent console: files on messages and outbound delivery states (loaded after
 * console-conversation.js; plain script, shares the console's scope).
 * - A message's `attachments` ({id, name, content_type, size}) show under its bubble: images as
 *   thumbnails, everything else as a download link, both from GET /api/v1/attachments/{id}/content (the
 *   agent's own session; same origin). Names are set as text.
 * - A public reply's outbound deliveries (`deliveries` in history, `message.status` frames live) show as
 *   "Telegram: delivered" (or the failure's reason) under the reply.
 */
"use strict";

const FILE_IMAGES = ["image/png", "image/jpeg", "image/gif", "image/webp"];
const deliveryStates = new Map(); // message id -> Map(delivery id -> {kind, state, reason})

function fileList(m) {
  const atts = Array.isArray(m.attachments) ? m.attachments : [];
  if (!atts.length) return null;
  const box = el("div", { class: "files" });
  for (const a of atts) {
    if (!a || typeof a.id !== "string") continue;
    const url = "/api/v1/attachments/" + encodeURIComponent(a.id) + "/content";
    const name = String(a.name || "file");
    if (FILE_IMAGES.includes(a.content_type)) {
      box.appendChild(el("a", { href: url, target: "_blank", rel: "noopener", class: "thumb-link", title: name }, [
        el("img", { class: "thumb", src: url, alt: name, loading: "lazy" })
      ]));
    } else {
      box.appendChild(el("a", { href: url, download: name, class: "file", text: name + " (" + fileSize(a.size) + ")" }));
    }
  }
  return box;
}

function fileSize(n) {
  n = +n || 0;
  return n < 1024 ? n + " B" : n < 1048576 ? Math.round(n / 1024) + " KB" : (n / 1048576).toFixed(1) + " MB";
}

const KIND_LABEL = { email: "Email", channel: "Delivery", adapter: "Delivery", webhook: "Webhook" };

function rememberDeliveries(m) {
  for (const d of m.deliveries || []) noteDelivery(m.id, d.id || d.kind, d.kind, d.state, d.reason);
}

function noteDelivery(messageId, deliveryId, kind, state, reason) {
  let per = deliveryStates.get(messageId);
  if (!per) deliveryStates.set(messageId, (per = new Map()));
  per.set(deliveryId, { kind, state, reason: reason || null });
}

function deliveryLine(m) {
  const per = m.id && deliveryStates.get(m.id);
  if (!per || !per.size) return null;
  const parts = [];
  for (const d of per.values()) {
    parts.push((KIND_LABEL[d.kind] || d.kind) + ": " + String(d.state).replace(/_/g, " ") + (d.reason ? " (" + d.reason + ")" : ""));
  }
  const failed = [...per.values()].some((d) => d.state === "failed");
  return el("span", { class: "delivery" + (failed ? " failed" : ""), text: parts.join(" · ") });
}

// a `message.status` frame: remember it, and repaint the reply's line if it is on screen
function onDeliveryStatus(f) {
  if (!f.message_id) return;
  noteDelivery(f.message_id, f.delivery_id || f.kind, f.kind, f.state, f.reason);
  const node = document.querySelector('#log .msg[data-id="' + CSS.escape(f.message_id) + '"] .meta');
  if (!node) return;
  const old = node.querySelector(".delivery");
  const line = deliveryLine({ id: f.message_id });
  if (old) old.replaceWith(line);
  else node.appendChild(line);
}

// -- sending files: Attach uploads each to POST /api/v1/uploads, then sends it as a message ----------------
$("attach").addEventListener("click", () => $("attach-file").click());
$("attach-file").addEventListener("change", () => {
  const files = Array.from($("attach-file").files || []).slice(0, 10);
  $("attach-file").value = "";
  for (const file of files) uploadAndSend(file);
});

async function uploadAndSend(file) {
  const cid = selected;
  if (!cid) return;
  const hint = $("composer-hint");
  hint.textContent = "Uploading " + file.name + "…";
  let r;
  try {
    r = await fetch("/api/v1/uploads?conversation_id=" + encodeURIComponent(cid), {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": file.type || "application/octet-stream",
        "X-Filename": encodeURIComponent(file.name),
        "X-CSRF-Token": csrf || ""
      },
      body: file
    });
  } catch (e) {
    hint.textContent = "Could not upload " + file.name + ": the server is unreachable.";
    return;
  }
  const body = await r.json().catch(() => ({}));
  if (r.status !== 201) {
    hint.textContent = "Could not send " + file.name + ": " + ((body.error && body.error.message) || "HTTP " + r.status);
    return;
  }
  hint.textContent = "";
  const p = { cid, client_id: uid(), text: "", private: false, attachments: [body], created_at: new Date().toISOString() };
  pending.set(p.client_id, p);
  insertNode(pendingNode(p), null, "p" + p.client_id);
  scrollBottom();
  sendItem(p);
}
