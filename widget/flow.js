/*! chatserver widget: what happens around the messages (loaded before chat.js, which passes its state in X):
 * the pre-chat form before the first message, the "nobody is available" / "we are closed" notice always
 * after the visitor's messages (with the email request when none is known), the rating when an agent has
 * closed the chat (`csat.submit`), bot buttons (`action`), and the focus trap on phones. */
(function (w) {
  "use strict";
  const M = (w.Chatserver._m = w.Chatserver._m || {});
  M.flow = function (X) {
    const T = X.T;
    let pre = null;
    let notice = null;
    let noticeKey = "";
    let rate = null;
    let rateKey = "";

    // REST with the visitor token; a refusal rejects with {message, field?, reason?}
    async function post(path, body) {
      await X.ensureSession();
      const r = await fetch(X.SERVER + path, {
        method: "POST", mode: "cors", credentials: "omit",
        headers: { "Content-Type": "application/json", Authorization: "Bearer " + X.st().token },
        body: JSON.stringify(body)
      });
      const j = await r.json().catch(() => ({}));
      if (!r.ok) throw Object.assign({ message: (j.error && j.error.message) || "" }, (j.error && j.error.data) || {});
      return j;
    }
    function remember(j) {
      const st = X.st();
      if (j.contact) st.email = j.contact.email || null;
      X.save();
    }

    function refresh() {
      const st = X.st();
      const needPre = X.prechat.length > 0 && !st.cid && !st.pre && !st.out.length;
      if (needPre && !pre) {
        pre = M.panels.prechat(T, X.prechat, (answers) =>
          post("/api/v1/widget/contact", { fields: answers }).then((j) => {
            X.st().pre = j.fields || answers;
            remember(j);
            refresh();
            X.input.focus();
          })
        );
        X.form.hidden = true;
        X.form.before(pre.node);
      } else if (!needPre && pre) {
        pre.node.remove();
        pre = null;
        X.form.hidden = false;
      }

      const cid = st.cid;
      const status = cid ? st.status[cid] : null;
      const wrote = (cid && X.msgsOf(cid).some(X.isMine)) || st.out.length > 0;
      const waiting = !status || status === "queued" || status === "offered" || status === "pending";
      const closed = (cid && st.reason[cid] === "outside_business_hours") || (X.closedNow() && waiting);
      const show = wrote && waiting && (status === "pending" || closed);
      const key = show ? (closed ? "closed" : "offline") : "";
      if (key !== noticeKey) {
        if (notice) notice.remove();
        notice = key
          ? M.panels.notice(T, closed, !st.email, (email) => post("/api/v1/widget/contact", { email }).then(remember))
          : null;
        noticeKey = key;
      }
      if (notice && X.log.lastElementChild !== notice) X.log.appendChild(notice); // after their messages

      const agentSpoke = cid && X.msgsOf(cid).some((m) => m.author && m.author.kind === "agent");
      const rk = status === "resolved" && agentSpoke ? cid : "";
      if (rk !== rateKey) {
        if (rate) rate.remove();
        rate = rk
          ? M.panels.rating(T, st.rated[cid], (score, comment) =>
              X.request({ type: "csat.submit", conversation_id: cid, score, comment: comment || undefined }).then(() => {
                X.st().rated[cid] = score;
                X.save();
              })
            )
          : null;
        rateKey = rk;
      }
      if (rate && !rate.querySelector(".transcript")) {
        rate.appendChild(M.panels.transcript(T, st.email, (email) => {
          const saved = email === X.st().email ? Promise.resolve() : post("/api/v1/widget/contact", { email }).then(remember);
          return saved.then(() => post("/api/v1/widget/transcript", { conversation_id: cid }));
        }));
      }
      if (rate && X.log.lastElementChild !== rate) X.log.appendChild(rate);
    }

    function actions(m) {
      if (!m || X.isMine(m) || !m.actions) return null;
      return M.panels.actions(m.actions, (actionId) =>
        X.send({ type: "action", conversation_id: X.st().cid, message_id: m.id, action_id: actionId })
      );
    }

    // on a phone the open panel covers the page: Tab stays inside it (Escape closes it, focus returns)
    X.panel.addEventListener("keydown", (e) => {
      if (e.key !== "Tab" || !(w.matchMedia && w.matchMedia("(max-width: 480px)").matches)) return;
      const all = Array.from(X.panel.querySelectorAll("button, input, select, textarea, [tabindex='0']"))
        .filter((x) => !x.disabled && x.getClientRects().length);
      if (!all.length) return;
      const active = X.root.activeElement;
      const first = all[0];
      const last = all[all.length - 1];
      if (e.shiftKey && active === first) { e.preventDefault(); last.focus(); }
      else if (!e.shiftKey && active === last) { e.preventDefault(); first.focus(); }
    });

    return { refresh, actions };
  };
})(window);
