/*! chatserver widget: the faces in the panel's header (loaded before chat.js). Before an agent is assigned,
 * the inbox's team faces (GET /api/v1/widget/config `faces`: up to 3 of {name, avatar_url}); once assigned,
 * the agent's own face (the `conversation` frame's assignee.avatar_url). A face is an <img> whose src is
 * https:// or a path on the chat server (anything else is dropped), else, or when it fails to load, the
 * initials on a coloured disc. Names are set as text; the faces are decoration (the header's subtitle says
 * who answers), hidden from screen readers. */
(function (w) {
  "use strict";
  const M = (w.Chatserver._m = w.Chatserver._m || {});
  const { el, icon, I_CHAT } = M.dom;
  const COLOURS = 8;

  // an avatar URL the widget may load: https://..., or /path on the chat server; null for anything else
  function safeSrc(server, url) {
    if (typeof url !== "string" || !url || url.length > 500 || /[\s"'<>\\]/.test(url)) return null;
    if (url[0] === "/") return url[1] === "/" ? null : server + url;
    try {
      const u = new URL(url);
      return u.protocol === "https:" && !u.username && !u.password ? u.href : null;
    } catch (e) {
      return null;
    }
  }

  function initials(name) {
    const words = String(name || "").trim().split(/\s+/).filter(Boolean);
    const first = (word) => Array.from(word)[0] || "";
    const s = words.length > 1 ? first(words[0]) + first(words[words.length - 1]) : Array.from(words[0] || "?").slice(0, 2).join("");
    return s.toUpperCase();
  }

  function colour(name) {
    let h = 0;
    for (const ch of String(name || "")) h = (h * 31 + ch.codePointAt(0)) >>> 0;
    return h % COLOURS;
  }

  function face(server, person) {
    const name = String((person && person.name) || "");
    const disc = el("span", { class: "face c" + colour(name), title: name || null }, [el("span", { class: "ini", text: initials(name) })]);
    const src = safeSrc(server, person && person.avatar_url);
    if (src) {
      const img = el("img", { alt: "", src, width: "40", height: "40", loading: "lazy", decoding: "async", referrerpolicy: "no-referrer" });
      img.addEventListener("error", () => { img.remove(); disc.classList.remove("pic"); });
      disc.classList.add("pic");
      disc.appendChild(img);
    }
    return disc;
  }

  M.header = function (X) {
    const box = el("div", { class: "faces", "aria-hidden": "true" });
    const team = (Array.isArray(X.faces) ? X.faces : []).filter((f) => f && typeof f.name === "string").slice(0, 3);
    let shown = null;

    // who: the assigned agent ({name, avatar_url}) or null for the team
    function update(who) {
      const key = who ? "a:" + who.name + ":" + (who.avatar_url || "") : "team";
      if (key === shown) return;
      shown = key;
      box.textContent = "";
      box.classList.toggle("one", !!who || team.length < 2);
      if (who) box.appendChild(face(X.server, who));
      else if (team.length) for (const f of team) box.appendChild(face(X.server, f));
      else box.appendChild(el("span", { class: "face icon" }, [icon(I_CHAT)]));
    }
    update(null);
    return { box, update };
  };
  M.header.safeSrc = safeSrc;
  M.header.initials = initials;
})(window);
