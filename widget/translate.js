/*! chatserver widget: agents' messages in the visitor's language (docs/protocol.md, "Translation"): shown
 * translated when the server has translated them (`translations`, later `message.translated`), with a
 * per-message toggle to the original; a failed translation shows the original. Loaded before chat.js,
 * which passes its state in `X` (st() returns the current state object). */
(function (w) {
  "use strict";
  const M = (w.Chatserver._m = w.Chatserver._m || {});
  M.translations = function (X) {
    const { el } = M.dom;
    const showOrig = new Set(); // "<cid>:<seq>" of messages the visitor switched to the original (this page)
    const baseLang = () => X.locale().split(/[-_]/)[0].toLowerCase();
    const convLang = (cid) => X.st().lang[cid] || baseLang(); // the visitor's language: the conversation's

    function trOf(cid, m) {
      const tr = m.tr || {};
      for (const l of [convLang(cid), baseLang()]) if (l && l !== m.lang && tr[l] != null) return { lang: l, text: tr[l] };
      return null;
    }

    function setLang(node, lang) {
      if (lang) node.lang = lang;
      else node.removeAttribute("lang");
    }

    // Show a message in the visitor's language when a translation exists; the toggle keeps its node (and focus).
    function paintTr(row, m) {
      const cid = X.st().cid;
      const bubble = row.querySelector(".bubble");
      const meta = row.querySelector(".meta");
      const t = trOf(cid, m);
      const l = convLang(cid);
      const failed = !t && m.un && m.un[l] && m.lang !== l;
      let box = meta.querySelector(".tr");
      if (!t && !failed) {
        if (box) box.remove();
        bubble.textContent = m.text;
        setLang(bubble, m.lang);
        return;
      }
      if (!box) meta.appendChild((box = el("span", { class: "tr" })));
      let btn = box.querySelector("button");
      if (failed) {
        box.textContent = X.T.noTranslation;
        box.classList.add("none");
      } else if (!btn) {
        box.textContent = "";
        box.classList.remove("none");
        btn = el("button", {
          type: "button", class: "tr-btn", "aria-pressed": "false", text: X.T.showOriginal,
          onclick: () => {
            const key = X.st().cid + ":" + m.seq;
            if (!showOrig.delete(key)) showOrig.add(key);
            paintTr(row, m);
          }
        });
        box.append(el("span", { text: X.T.translated }), btn);
      }
      const orig = !t || showOrig.has(cid + ":" + m.seq);
      if (btn) btn.setAttribute("aria-pressed", String(orig));
      bubble.textContent = orig ? m.text : t.text;
      setLang(bubble, orig ? m.lang : t.lang);
    }

    function repaint(cid, m) {
      const node = cid === X.st().cid && X.nodes.get("s" + m.seq);
      if (!node || X.isMine(m) || m.kind === "event") return;
      const stick = X.nearBottom();
      paintTr(node, m);
      if (stick) X.scrollBottom();
    }

    // Merge translations (from `message.translated`, or a message seen again) into a cached message.
    function merge(m, tr, un) {
      let changed = false;
      for (const l in tr || {}) {
        if (tr[l] == null || (m.tr && m.tr[l] === tr[l])) continue;
        (m.tr = m.tr || {})[l] = tr[l];
        if (m.un) delete m.un[l];
        changed = true;
      }
      for (const l in un || {}) {
        if ((m.tr && m.tr[l] != null) || (m.un && m.un[l] === un[l])) continue;
        (m.un = m.un || {})[l] = un[l];
        changed = true;
      }
      return changed;
    }

    function onTranslated(f) {
      const cid = f.conversation_id;
      const m = X.msgsOf(cid).find((x) => x.seq === f.seq);
      if (!m || X.isMine(m) || !f.lang || (f.message_id && m.id && f.message_id !== m.id)) return;
      const ok = f.text != null;
      if (!merge(m, ok ? { [f.lang]: f.text } : null, ok ? null : { [f.lang]: f.reason || "unavailable" })) return;
      X.save();
      repaint(cid, m);
      if (ok) X.emit("translation", { conversationId: cid, seq: f.seq, id: m.id, lang: f.lang, text: f.text });
    }

    return { paintTr, repaint, merge, onTranslated };
  };
})(window);
