/*! chatserver widget: files (loaded before chat.js, which passes its state in X). The attach button and
 * pasted images upload to POST /api/v1/widget/uploads (the raw file, its type and name in headers, the
 * visitor token as Bearer; progress shown), then the file goes out as a message with `attachments` through
 * the same queue as text (resent with the same client_id after a reload, so exactly once). Files in
 * messages are shown as thumbnails (images) or as buttons that open a short-lived signed link (GET
 * /api/v1/widget/attachments/{id}/link); names are set as text, never as markup. */
(function (w) {
  "use strict";
  const M = (w.Chatserver._m = w.Chatserver._m || {});
  const IMAGES = ["image/png", "image/jpeg", "image/gif", "image/webp"];
  const I_CLIP = "m21.4 11.1-9.2 9.2a6 6 0 0 1-8.5-8.5l9.2-9.2a4 4 0 0 1 5.7 5.7l-9.2 9.2a2 2 0 0 1-2.8-2.8l8.5-8.5";

  M.files = function (X) {
    const T = X.T;
    const { el, icon } = M.dom;
    const fill = (text, vals) => Object.keys(vals).reduce((acc, k) => M.i18n.fill(acc, k, vals[k]), text);
    const links = new Map(); // attachment id -> {url, expires_at}

    const picker = el("input", { type: "file", class: "sr", tabindex: "-1", "aria-hidden": "true" });
    const button = el("button", { type: "button", class: "icon-btn attach", "aria-label": T.attach, title: T.attach }, [icon(I_CLIP)]);
    const status = el("div", { class: "upload", role: "status", hidden: true });
    button.addEventListener("click", () => picker.click());
    picker.addEventListener("change", () => {
      for (const f of Array.from(picker.files || []).slice(0, 10)) upload(f);
      picker.value = "";
    });
    X.input.addEventListener("paste", (e) => {
      const items = Array.from((e.clipboardData && e.clipboardData.files) || []);
      if (!items.length) return;
      e.preventDefault();
      items.slice(0, 10).forEach(upload);
    });

    function say(text) {
      status.textContent = text || "";
      status.hidden = !text;
    }

    async function upload(file) {
      const cid = X.st().cid;
      if (!cid) return;
      const name = file.name || "file";
      say(fill(T.uploading, { name, n: 0 }));
      try {
        await X.ensureSession();
        const att = await send(file, cid, name);
        say("");
        X.enqueue({ text: "", attachments: [att] });
      } catch (err) {
        say(fill(T.uploadFailed, { reason: (err && err.message) || "" }));
      }
    }

    function send(file, cid, name) {
      return new Promise((resolve, reject) => {
        const xhr = new XMLHttpRequest();
        xhr.open("POST", X.SERVER + "/api/v1/widget/uploads?conversation_id=" + encodeURIComponent(cid));
        xhr.setRequestHeader("Authorization", "Bearer " + X.st().token);
        xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
        xhr.setRequestHeader("X-Filename", encodeURIComponent(name));
        xhr.upload.onprogress = (e) => {
          if (e.lengthComputable) say(fill(T.uploading, { name, n: Math.round((100 * e.loaded) / e.total) }));
        };
        xhr.onload = () => {
          let body = {};
          try { body = JSON.parse(xhr.responseText || "{}"); } catch (e) { /* not JSON */ }
          if (xhr.status === 201) resolve(body);
          else reject({ message: (body.error && body.error.message) || "HTTP " + xhr.status });
        };
        xhr.onerror = () => reject({ message: "" });
        xhr.send(file);
      });
    }

    const fresh = (id) => {
      const known = links.get(id);
      return known && known.expires_at * 1000 > Date.now() + 15000 ? known.url : null;
    };
    async function link(id) {
      if (fresh(id)) return fresh(id);
      await X.ensureSession();
      const r = await fetch(X.SERVER + "/api/v1/widget/attachments/" + encodeURIComponent(id) + "/link", {
        mode: "cors", credentials: "omit", headers: { Authorization: "Bearer " + X.st().token }
      });
      if (!r.ok) throw new Error("HTTP " + r.status);
      const j = await r.json();
      links.set(id, { url: X.SERVER + j.url, expires_at: j.expires_at });
      return X.SERVER + j.url;
    }

    // the files of a message (pending ones have no link yet: their names only)
    function render(atts, pending) {
      const box = el("div", { class: "files" });
      for (const a of atts) {
        if (!a || typeof a.id !== "string") continue;
        const label = String(a.name || "file");
        if (!pending && IMAGES.includes(a.content_type)) {
          const img = el("img", { class: "thumb", alt: label });
          link(a.id).then((u) => { img.src = u; }, () => { img.replaceWith(el("span", { class: "file", text: label })); });
          box.appendChild(img);
        } else if (pending) {
          box.appendChild(el("span", { class: "file", text: label }));
        } else {
          // a real link (opened by the browser, no pop-up blocker); refreshed when its signature expired
          const anchor = el("a", { class: "file", target: "_blank", rel: "noopener noreferrer", text: label, "aria-label": fill(T.openFile, { name: label }) });
          const refresh = () => link(a.id).then((u) => { anchor.href = u; }, () => {});
          refresh();
          anchor.addEventListener("click", (e) => {
            if (!fresh(a.id)) { e.preventDefault(); refresh(); }
          });
          box.appendChild(anchor);
        }
      }
      return box;
    }

    return { button, picker, status, render };
  };
})(window);
