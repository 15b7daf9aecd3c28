/*! chatserver widget: the small status parts of the panel: the read receipt under the visitor's last message,
 * the header's line (queue position and estimated wait, the agent's name, ended), the unread badge (and
 * the `unread` event) and the typing indicator. Loaded before chat.js, which passes its state in X. */
(function (w) {
  "use strict";
  const M = (w.Chatserver._m = w.Chatserver._m || {});
  M.status = function (X) {
    function updateReceipt() {
      const mine = X.st().cid ? X.msgsOf(X.st().cid).filter(X.isMine) : [];
      const last = mine[mine.length - 1];
      const node = last && X.nodes.get("s" + last.seq);
      if (!node || X.st().out.length) {
        X.receipt.remove();
        return;
      }
      const read = (X.st().read[X.st().cid] || 0) >= last.seq;
      X.receipt.textContent = read ? X.T.read : X.T.sent;
      X.receipt.classList.toggle("is-read", read);
      const meta = node.querySelector(".meta");
      if (X.receipt.parentNode !== meta) meta.appendChild(X.receipt);
    }

    function updateHeader() {
      const status = X.st().cid ? X.st().status[X.st().cid] : null;
      let sub = X.T.subtitle;
      if (status === "resolved") sub = X.T.ended;
      else if (status === "assigned" && X.st().agent[X.st().cid]) sub = M.i18n.fill(X.T.withAgent, "name", X.st().agent[X.st().cid]);
      else if (status === "pending") sub = X.T.pending;
      else if (status && status !== "assigned") {
        const q = X.queue[X.st().cid];
        sub = q && q.position > 0
          ? M.i18n.fill(X.T.queue, "n", q.position) + " · " +
            (q.estimated_wait_s < 60 ? X.T.waitSoon : M.i18n.fill(X.T.waitMin, "n", Math.round(q.estimated_wait_s / 60)))
          : X.T.waiting;
      }
      X.subEl.textContent = sub;
    }

    function unreadCount() {
      if (!X.st().cid) return 0;
      const seen = X.st().seen[X.st().cid] || 0;
      return X.msgsOf(X.st().cid).filter((m) => m.seq > seen && !X.isMine(m) && m.kind === "text").length;
    }
    let lastUnread = 0;
    function updateBadge() {
      const n = X.isOpen() ? 0 : unreadCount();
      if (n !== lastUnread) { lastUnread = n; X.emit("unread", { count: n }); }
      X.badge.hidden = !n;
      X.badge.textContent = n > 9 ? "9+" : String(n);
      X.launcher.setAttribute("aria-label", (X.isOpen() ? X.T.minimize : X.T.open) + (n ? ", " + M.i18n.fill(X.T.unread, "n", n) : ""));
    }

    let typingHide = 0;
    function showTyping(name, on) {
      clearTimeout(typingHide);
      const stick = X.nearBottom();
      X.typing.hidden = !on;
      if (stick) X.scrollBottom(); // the indicator takes room from the log: keep the last message in view
      if (on) {
        X.typingText.textContent = M.i18n.fill(X.T.typing, "name", name || "");
        typingHide = setTimeout(() => { X.typing.hidden = true; }, 8000);
      }
    }

    return { updateReceipt, updateHeader, updateBadge, showTyping };
  };
})(window);
