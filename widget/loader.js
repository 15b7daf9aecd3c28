/*! chatserver widget loader. Embed with:
 *   <script src="https://YOUR-SERVER/widget/loader.js" data-inbox-key="KEY" async></script>
 * Optional, before it: window.chatserverSettings = {
 *   inboxKey, server, locale, user: {name}, color, theme: "light" | "dark" | "auto",
 *   position: "right" | "left", title, subtitle, greeting, open, fields: {...}, strings: {...}, zIndex }
 * It creates a host element with an open Shadow DOM, a stub `window.Chatserver` API that queues calls,
 * then loads chat.css and chat.js (the UI) from the same directory. No build step, no dependencies.
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
  host.style.cssText =
    "all:initial;position:fixed;z-index:" + (cfg.zIndex || 2147483000) + ";bottom:0;" +
    (cfg.position === "left" ? "left:0;" : "right:0;") + "width:0;height:0;";
  var root = host.attachShadow({ mode: "open" });

  var queue = [];
  function stub(name) {
    return function () { queue.push([name, Array.prototype.slice.call(arguments)]); };
  }
  w.Chatserver = {
    _root: root, _host: host, _cfg: cfg, _queue: queue,
    open: stub("open"), close: stub("close"), toggle: stub("toggle"), on: stub("on"), off: stub("off")
  };

  var css = d.createElement("link");
  css.rel = "stylesheet";
  css.href = assets + "chat.css";
  root.appendChild(css);

  function mount() {
    (d.body || d.documentElement).appendChild(host);
    var js = d.createElement("script");
    js.src = assets + "chat.js";
    js.async = true;
    js.onerror = function () { if (w.console) w.console.warn("chatserver: could not load " + js.src); };
    (d.head || d.documentElement).appendChild(js);
  }
  if (d.body) mount();
  else d.addEventListener("DOMContentLoaded", mount);
})(window, document);
