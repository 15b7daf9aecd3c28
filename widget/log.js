/*! chatserver widget: the message log (loaded before chat.js, which passes its state in X): one node per
 * message in seq order, the visitor's pending ones after them, consecutive messages of one author grouped,
 * system lines after the visitor's first message. A system line with a code (message.event, docs/protocol.md
 * "System lines") is said from the visitor's catalogue (`sys.<code>`), its params filled in as text; without
 * a code, or a code this catalogue does not know, its text is shown. All content is set as text. */
(function (w) {
  "use strict";
  const M = (w.Chatserver._m = w.Chatserver._m || {});
  const { el } = M.dom;

  // a system line in the visitor's language, or its (English, or translated) text
  function eventText(T, m) {
    const ev = m.event;
    const tpl = ev && typeof ev.code === "string" && /^[a-z_]{1,40}$/.test(ev.code) ? T["sys." + ev.code] : null;
    if (typeof tpl !== "string") return m.text;
    let s = tpl;
    const params = ev.params && typeof ev.params === "object" ? ev.params : {};
    for (const k of Object.keys(params)) s = M.i18n.fill(s, k, String(params[k]));
    return /\{[a-z]+\}/.test(s) ? m.text : s; // a param missing: the server's text says it right
  }

  M.log = function (X) {
    const { T, log, nodes } = X;

    function msgNode(m, pending) {
      if (m.kind === "event") {
        const sys = m.author && m.author.kind === "system";
        return el("div", { class: "msg event" + (sys ? " sys" : ""), "data-seq": m.seq, "data-code": m.event && m.event.code ? String(m.event.code) : null }, [el("span", { text: eventText(T, m) })]);
      }
      const mine = X.isMine(m);
      const row = el("div", {
        class: "msg " + (mine ? "me" : "them") + (pending ? " pending" : "") + (pending && pending.failed ? " failed" : ""),
        "data-seq": pending ? null : m.seq,
        "data-author": m.author ? m.author.kind + ":" + (m.author.id || m.author.name) : "",
        "data-client-id": m.client_id || null
      });
      if (!mine) row.appendChild(el("div", { class: "who", text: m.author ? m.author.name : "" }));
      const files = m.attachments && m.attachments.length ? m.attachments : null;
      row.appendChild(el("div", { class: "bubble", text: m.text, hidden: !m.text && !!files }));
      if (files) row.appendChild(X.fileUI().render(files, !!pending));
      const acts = !pending && X.flow().actions(m);
      if (acts) row.appendChild(acts);
      const meta = el("div", { class: "meta" });
      if (pending && pending.failed) {
        meta.appendChild(el("span", { text: T.failed + " " + (pending.error || "") }));
        meta.appendChild(el("button", { type: "button", class: "retry", text: T.retry, onclick: () => X.retrySend(pending) }));
      } else {
        meta.appendChild(el("time", { datetime: m.created_at || null, text: pending ? T.sending : X.fmtTime(m.created_at) }));
      }
      row.appendChild(meta);
      if (!mine && !pending) X.paintTr(row, m);
      return row;
    }

    function insertNode(node, seq) {
      const kids = log.children;
      let ref = null;
      if (seq != null) {
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
      groupWithPrevious(node);
      if (node.nextElementSibling) groupWithPrevious(node.nextElementSibling);
      eventsAfterFirst();
    }

    // A system line (e.g. routing's "nobody is available") can be written before the visitor's first message
    // reaches the server: it is shown after that message, never above it.
    function eventsAfterFirst() {
      const first = log.querySelector(".msg.me");
      if (!first) return;
      for (const ev of log.querySelectorAll(".msg.event.sys")) {
        if (first.compareDocumentPosition(ev) & Node.DOCUMENT_POSITION_PRECEDING) first.after(ev);
      }
    }

    function groupWithPrevious(node) {
      const prev = node.previousElementSibling;
      const a = node.getAttribute("data-author");
      node.classList.toggle("cont", !!a && !!prev && prev.getAttribute("data-author") === a);
    }

    function nearBottom() {
      return log.scrollHeight - log.scrollTop - log.clientHeight < 80;
    }
    function scrollBottom() {
      log.scrollTop = log.scrollHeight;
    }

    function showMessage(cid, m, live) {
      if (cid !== X.st().cid) return;
      const key = "s" + m.seq;
      if (nodes.has(key)) return;
      const stick = nearBottom() || X.isMine(m);
      if (m.client_id && nodes.has("p" + m.client_id)) {
        nodes.get("p" + m.client_id).remove();
        nodes.delete("p" + m.client_id);
      }
      const node = msgNode(m, null);
      nodes.set(key, node);
      insertNode(node, m.seq);
      if (live) {
        X.updateReceipt();
        X.flow().refresh();
        if (stick) scrollBottom();
      }
    }

    function showPending(o) {
      const key = "p" + o.client_id;
      const old = nodes.get(key);
      const node = msgNode({ author: X.me() || { kind: "contact", id: "" }, kind: "text", text: o.text, client_id: o.client_id, attachments: o.attachments }, o);
      if (old) old.replaceWith(node);
      else log.appendChild(node);
      nodes.set(key, node);
      eventsAfterFirst();
      X.updateReceipt();
      X.flow().refresh();
    }

    return { msgNode, showMessage, showPending, nearBottom, scrollBottom };
  };
  M.log.eventText = eventText;
})(window);
