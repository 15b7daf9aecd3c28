/*! chatserver widget loader. Embed with:
 *   <script src="https://YOUR-SERVER/widget/loader.js" data-inbox-key="KEY" async></script>
 * Optional, before it: window.chatserverSettings = {
 *   inboxKey, server, locale, user: {id, name, email, expires, hash} (see Chatserver.setUser), color,
 *   theme: "light" | "dark" | "auto", position: "right" | "left", title, subtitle, greeting, open,
 *   prechat: [...] (or [] for none), fields: {...}, strings: {...}, zIndex }
 * These override the inbox's own settings (GET /api/v1/widget/config; docs/protocol.md, "The widget").
 * It creates a host element with an open Shadow DOM, a stub `window.Chatserver` API that queues calls,
 * then loads chat.css and the UI (dom.js, i18n.js, translate.js, panels.js, flow.js, files.js, session.js, status.js, log.js, header.js, chat.js; the visitor's catalogue
 * from i18n/) from the same directory. No build step, no dependencies.
 */
(function (w, d) {
  "use strict";
  var existing = w.Chatserver;
  if (existing && existing._root) return; // loaded twice: keep the first widget
  var script = d.currentScript || d.querySelector("script[data-inbox-key]");
  var settings = w.chatserverSettings || {};
  var cfg = {};
  for (var k in settings) if (Object.prototype.hasOwnProperty.call(settings, k)) cfg[k] = settings[k];
  cfg.inboxKey = cfg.inboxKey || (script && script.getAttribute("data-inbox-key"));
  if (!cfg.inboxKey) {
    if (w.console) w.console.warn("chatserver: no inbox key (data-inbox-key on the script tag)");
    return;
  }
  var src = script && script.src ? script.src : d.baseURI;
  var assets = new URL(".", src).href; // the directory that holds loader.js, chat.js and chat.css
  cfg.server = (cfg.server || new URL(src).origin).replace(/\/+$/, "");
  // the visitor's own language (the conversation's language starts from it), not the page's
  var nav = w.navigator || {};
  cfg.locale = cfg.locale || (nav.languages && nav.languages[0]) || nav.language || d.documentElement.lang || "en";

  var host = d.createElement("div");
  host.id = "chatserver-widget";
  host.setAttribute("data-chatserver", "");
  // !important inline: a host page's `* { all: unset !important }` must not move or hide the widget
  var hostStyle = {
    all: "initial", display: "block", position: "fixed", "z-index": String(cfg.zIndex || 2147483000), bottom: "0",
    left: cfg.position === "left" ? "0" : "auto", right: cfg.position === "left" ? "auto" : "0",
    width: "0", height: "0", overflow: "visible"
  };
  for (var p in hostStyle) host.style.setProperty(p, hostStyle[p], "important");
  var root = host.attachShadow({ mode: "open" });

  var queue = [];
  function stub(name) {
    return function () { queue.push([name, Array.prototype.slice.call(arguments)]); };
  }
  w.Chatserver = {
    _root: root, _host: host, _cfg: cfg, _queue: queue,
    open: stub("open"), close: stub("close"), toggle: stub("toggle"), on: stub("on"), off: stub("off"),
    setUser: stub("setUser"), reset: stub("reset"), setAttributes: stub("setAttributes")
  };

  cfg.assets = assets;
  var css = d.createElement("link");
  css.rel = "stylesheet";
  css.href = assets + "chat.css";
  root.appendChild(css);

  function mount() {
    (d.body || d.documentElement).appendChild(host);
    // the UI, in order (async=false keeps the order while they download in parallel)
    ["dom.js", "i18n.js", "translate.js", "panels.js", "flow.js", "files.js", "session.js", "status.js", "log.js", "header.js", "chat.js"].forEach(function (name) {
      var js = d.createElement("script");
      js.src = assets + name;
      js.async = false;
      js.onerror = function () { if (w.console) w.console.warn("chatserver: could not load " + js.src); };
      (d.head || d.documentElement).appendChild(js);
    });
  }
  if (d.body) mount();
  else d.addEventListener("DOMContentLoaded", mount);
})(window, document);
