/*! chatserver widget: the visitor's language. Catalogues are data files (i18n/<lang>.json), one fetched
 * per visitor; the language comes from the `locale` setting, else navigator.languages; ar and he are
 * right-to-left. Dates and times go through Intl in that language. */
(function (w) {
  "use strict";
  const M = (w.Chatserver._m = w.Chatserver._m || {});
  const LANGS = ["en", "de", "es", "fr", "it", "pt", "nl", "pl", "ru", "tr", "zh", "ja", "ko", "ar", "he"];
  const RTL = ["ar", "he", "fa", "ur"];
  const base = (tag) => String(tag || "").replace(/_/g, "-").split("-")[0].toLowerCase();

  function pick(cfg) {
    const nav = w.navigator || {};
    const wanted = [cfg.locale, ...(nav.languages || []), nav.language].filter(Boolean);
    for (const tag of wanted) if (LANGS.includes(base(tag))) return base(tag);
    return "en";
  }

  async function fetchJson(url) {
    const r = await fetch(url, { credentials: "omit" });
    if (!r.ok) throw new Error(url + " " + r.status);
    return r.json();
  }

  // The catalogue of `lang` (every catalogue has every key: tests check); English when it cannot load.
  async function load(assets, lang) {
    try { return await fetchJson(assets + "i18n/" + lang + ".json"); } catch (e) { /* English below */ }
    try { return await fetchJson(assets + "i18n/en.json"); } catch (e) { return {}; }
  }

  function timeFmt(lang) {
    try { return new Intl.DateTimeFormat(lang, { hour: "2-digit", minute: "2-digit" }); } catch (e) { return null; }
  }

  function time(fmt, iso) {
    const t = iso ? new Date(iso) : new Date();
    if (isNaN(t)) return "";
    return fmt ? fmt.format(t) : t.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  M.i18n = { LANGS, pick, load, rtl: (lang) => RTL.includes(base(lang)), timeFmt, time, fill: (s, k, v) => String(s).split("{" + k + "}").join(v) };
})(window);
