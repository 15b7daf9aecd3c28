/*! chatserver widget: the parts of the chat beyond messages (loaded before chat.js): the pre-chat form, the
 * notice when nobody is available (with the email request), the rating when a chat ends, and bot buttons.
 * Each is a function of a small context from chat.js; all content is set as text. A later attach button
 * belongs in the composer (chat.js, `composerTools`). */
(function (w) {
  "use strict";
  const M = (w.Chatserver._m = w.Chatserver._m || {});
  const { el, icon } = M.dom;
  const EMAIL = /^[^@\s<>"(),;:]{1,64}@[^@\s<>"(),;:]+\.[^@\s<>"(),;:]{2,}$/;
  const PHONE = /^\+?[0-9][0-9 ()./-]{4,24}$/;
  let seq = 0;

  // The pre-chat form: fields [{key, type, label?, required?, options?}]; onSubmit(answers) returns a
  // promise that rejects with {field, message} when the server refuses an answer.
  function prechat(T, fields, onSubmit) {
    const inputs = {};
    const errors = {};
    const rows = fields.map((f) => {
      const id = "cs-f" + ++seq;
      const label = f.label || { name: T.fName, email: T.fEmail, phone: T.fPhone }[f.type] || T.fText;
      let input;
      if (f.type === "dropdown") {
        input = el("select", { id, name: f.key }, [el("option", { value: "", text: T.choose })]);
        for (const o of f.options || []) input.appendChild(el("option", { value: o, text: o }));
      } else {
        input = el("input", {
          id, name: f.key,
          type: { email: "email", phone: "tel" }[f.type] || "text",
          autocomplete: { name: "name", email: "email", phone: "tel" }[f.type] || "off",
          maxlength: "500"
        });
      }
      if (f.required) input.setAttribute("aria-required", "true");
      const err = el("p", { class: "err", id: id + "-e", hidden: true });
      input.setAttribute("aria-describedby", id + "-e");
      inputs[f.key] = input;
      errors[f.key] = err;
      return el("div", { class: "field" }, [
        el("label", { for: id, text: label + (f.required ? " *" : " (" + T.optional + ")") }),
        input,
        err
      ]);
    });
    const submit = el("button", { type: "submit", class: "primary", text: T.start });
    const form = el("form", { class: "prechat", novalidate: true }, [el("p", { class: "intro", text: T.prechatIntro }), ...rows, submit]);

    function show(key, message) {
      const err = errors[key];
      if (!err) return;
      err.textContent = message || "";
      err.hidden = !message;
      inputs[key].setAttribute("aria-invalid", message ? "true" : "false");
    }
    function check() {
      let first = null;
      const answers = {};
      for (const f of fields) {
        const v = inputs[f.key].value.trim();
        let problem = "";
        if (!v && f.required) problem = T.errRequired;
        else if (v && f.type === "email" && !EMAIL.test(v)) problem = T.errEmail;
        else if (v && f.type === "phone" && !PHONE.test(v)) problem = T.errPhone;
        show(f.key, problem);
        if (problem && !first) first = inputs[f.key];
        if (v) answers[f.key] = v;
      }
      if (first) first.focus();
      return first ? null : answers;
    }
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const answers = check();
      if (!answers) return;
      submit.disabled = true;
      onSubmit(answers).then(
        () => { submit.disabled = false; },
        (err) => {
          submit.disabled = false;
          const key = err && err.field ? String(err.field).replace(/^fields\./, "") : null;
          if (key && inputs[key]) {
            show(key, { email: T.errEmail, phone: T.errPhone, required: T.errRequired }[err.reason] || err.message);
            inputs[key].focus();
          } else show(fields[0].key, (err && err.message) || T.failed);
        }
      );
    });
    return { node: form, focus: () => { const f = fields[0] && inputs[fields[0].key]; if (f) f.focus(); } };
  }

  // Nobody can answer now: say so (after the visitor's message), and ask for an email if we have none.
  function notice(T, closed, needEmail, saveEmail) {
    const box = el("div", { class: "notice", role: "status" }, [el("p", { text: closed ? T.closed : T.offline })]);
    if (!needEmail) return box;
    const id = "cs-n" + ++seq;
    const input = el("input", { id, type: "email", autocomplete: "email", maxlength: "254" });
    const err = el("p", { class: "err", hidden: true });
    const form = el("form", { class: "ask", novalidate: true }, [
      el("label", { for: id, text: T.askEmail }),
      el("div", { class: "row" }, [input, el("button", { type: "submit", class: "primary", text: T.saveEmail })]),
      err
    ]);
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const v = input.value.trim();
      if (!EMAIL.test(v)) {
        err.textContent = T.errEmail;
        err.hidden = false;
        input.setAttribute("aria-invalid", "true");
        input.focus();
        return;
      }
      saveEmail(v).then(
        () => form.replaceWith(el("p", { class: "ok", text: M.i18n.fill(T.emailSaved, "email", v) })),
        (x) => { err.textContent = (x && x.message) || T.errEmail; err.hidden = false; }
      );
    });
    box.appendChild(form);
    return box;
  }

  // The rating when an agent has closed the chat: 1-5 stars and an optional comment.
  function rating(T, given, submit) {
    const box = el("div", { class: "rating", role: "group", "aria-label": T.rateTitle });
    const part = el("div"); // the rating itself (the transcript form may follow it in the box)
    box.appendChild(part);
    if (given) {
      part.appendChild(el("p", { class: "ok", text: T.rated }));
      return box;
    }
    let score = 0;
    const stars = [1, 2, 3, 4, 5].map((n) =>
      el("button", {
        type: "button", class: "star", "aria-pressed": "false", "aria-label": M.i18n.fill(T.rateStar, "n", n),
        onclick: () => {
          score = n;
          stars.forEach((s, i) => { s.setAttribute("aria-pressed", String(i < n)); s.classList.toggle("on", i < n); });
          send.disabled = false;
        }
      }, [icon(M.dom.I_STAR)])
    );
    const id = "cs-r" + ++seq;
    const comment = el("textarea", { id, rows: "2", maxlength: "2000" });
    const send = el("button", { type: "button", class: "primary", text: T.rateSend, disabled: true });
    send.addEventListener("click", () => {
      if (!score) return;
      send.disabled = true;
      submit(score, comment.value.trim() || null).then(
        () => part.replaceChildren(el("p", { class: "ok", text: T.rated })),
        () => { send.disabled = false; }
      );
    });
    part.append(el("p", { class: "q", text: T.rateTitle }), el("div", { class: "stars" }, stars),
      el("label", { for: id, text: T.comment }), comment, send);
    return box;
  }

  // After the chat: the transcript by email (the address asked for when none is known).
  function transcript(T, email, submit) {
    const id = "cs-t" + ++seq;
    const input = el("input", { id, type: "email", autocomplete: "email", maxlength: "254", value: email || "" });
    const err = el("p", { class: "err", hidden: true });
    const form = el("form", { class: "ask transcript", novalidate: true }, [
      el("label", { for: id, text: T.transcript }),
      el("div", { class: "row" }, [input, el("button", { type: "submit", class: "primary", text: T.send })]),
      err
    ]);
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const v = input.value.trim();
      if (!EMAIL.test(v)) {
        err.textContent = T.errEmail;
        err.hidden = false;
        input.setAttribute("aria-invalid", "true");
        return;
      }
      submit(v).then(
        () => form.replaceWith(el("p", { class: "ok transcript", text: M.i18n.fill(T.transcriptSent, "email", v) })),
        (x) => { err.textContent = (x && x.message) || ""; err.hidden = false; }
      );
    });
    return form;
  }

  // A bot's quick replies: [{id, label}] (anything else is ignored); a click sends the action once.
  function actions(list, onClick) {
    const valid = (Array.isArray(list) ? list : []).filter((a) => a && a.id != null && a.label != null).slice(0, 10);
    if (!valid.length) return null;
    const box = el("div", { class: "actions" });
    for (const a of valid) {
      box.appendChild(el("button", {
        type: "button", class: "action", text: String(a.label),
        onclick: (e) => {
          for (const b of box.querySelectorAll("button")) b.disabled = true;
          e.currentTarget.classList.add("chosen");
          onClick(String(a.id));
        }
      }));
    }
    return box;
  }

  M.panels = { prechat, notice, rating, transcript, actions };
})(window);
