/*! chatserver widget: the visitor session (POST /api/v1/widget/sessions): a visitor token, renewed before it
 * expires; with `Chatserver.setUser` the signed user goes along, and when the server cannot verify it the
 * site's console says why (the visitor stays anonymous). Loaded before chat.js, which passes its state in X. */
(function (w) {
  "use strict";
  const M = (w.Chatserver._m = w.Chatserver._m || {});
  M.session = function (X) {
    const api = { renew: false, ensure };
    async function ensure() {
      const now = Date.now();
      const valid = X.st().token && X.st().exp > now;
      if (valid && !api.renew && X.st().exp - now > X.RENEW_MS) return;
      const body = { inbox_key: X.cfg.inboxKey };
      if (X.locale()) body.locale = X.locale();
      if (X.st().token) body.token = X.st().token;
      if (X.cfg.user && X.cfg.user.name) body.name = String(X.cfg.user.name).slice(0, 200);
      if (X.cfg.user && X.cfg.user.id != null) {
        const u = X.cfg.user;
        body.user = { id: u.id, name: u.name, email: u.email, expires: u.expires, hash: u.hash };
      }
      let r;
      try {
        r = await fetch(X.SERVER + "/api/v1/widget/sessions", {
          method: "POST",
          mode: "cors",
          credentials: "omit",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify(body)
        });
      } catch (e) {
        if (valid && !api.renew) return; // renewal failed: the current token is still good
        throw e;
      }
      if (r.status === 404 || r.status === 403) throw { fatal: true };
      if (!r.ok) throw new Error("session " + r.status);
      const j = await r.json();
      if (X.st().contact && j.contact_id !== X.st().contact) X.restart(X.st().out); // another visitor now
      X.st().token = j.token;
      X.st().exp = Date.parse(j.expires_at) || now + 864e5;
      X.st().contact = j.contact_id;
      if (j.contact) X.st().email = j.contact.email || X.st().email;
      if (j.identity_error && w.console) w.console.warn("chatserver: setUser: " + j.identity_error.message + " (the visitor stays anonymous)");
      api.renew = false;
      X.save();
    }

    return api;
  };
})(window);
