/*! chatserver widget: DOM helpers shared by the widget's scripts (loaded by loader.js before chat.js).
 * User content is only ever set with textContent ("text"); attributes are set one by one. */
(function (w, d) {
  "use strict";
  const M = (w.Chatserver._m = w.Chatserver._m || {});
  function el(tag, attrs, kids) {
    const e = d.createElement(tag);
    for (const k in attrs || {}) {
      const v = attrs[k];
      if (v == null || v === false) continue;
      if (k === "text") e.textContent = v;
      else if (k === "class") e.className = v;
      else if (k.slice(0, 2) === "on") e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of kids || []) if (c) e.appendChild(c);
    return e;
  }
  const NS = "http://www.w3.org/2000/svg";
  function icon(...paths) {
    const s = d.createElementNS(NS, "svg");
    s.setAttribute("viewBox", "0 0 24 24");
    s.setAttribute("aria-hidden", "true");
    s.setAttribute("focusable", "false");
    for (const p of paths) {
      const e = d.createElementNS(NS, "path");
      e.setAttribute("d", p);
      s.appendChild(e);
    }
    return s;
  }
  function uid() { // a client_id: random, never reused
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return "w" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  }
  M.dom = {
    el, icon, uid,
    I_CHAT: "M21 11.5a8.4 8.4 0 0 1-.9 3.8 8.5 8.5 0 0 1-7.6 4.7 8.4 8.4 0 0 1-3.8-.9L3 21l1.9-5.7a8.4 8.4 0 0 1-.9-3.8 8.5 8.5 0 0 1 4.7-7.6 8.4 8.4 0 0 1 3.8-.9h.5a8.5 8.5 0 0 1 8 8z",
    I_X: "M18 6 6 18M6 6l12 12",
    I_DOWN: "m6 9 6 6 6-6",
    I_SEND: "M22 2 11 13M22 2l-7 20-4-9-9-4z",
    I_STAR: "m12 2 3.1 6.3 6.9 1-5 4.9 1.2 6.8L12 17.8 5.8 21l1.2-6.8-5-4.9 6.9-1z"
  };
})(window, document);
