// prompt-retriever web page: search as you type (debounced), filters, copy, surprise me. No dependencies.
// The search lives in the URL (/?q=...&genre=...&theme=...): loading such a URL runs it, a submitted search
// is a history entry, and back/forward bring back that entry's form and results. An empty q means no search.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const q = $("q"), genre = $("genre"), theme = $("theme"), results = $("results");
  const statusEl = $("status"), empty = $("empty"), errorEl = $("error"), card = $("card");
  const info = $("system-info");
  let timer = null, seq = 0;
  // The current history entry was made by search-as-you-type and not submitted yet: further typing and
  // the submit update it in place, so one search is one entry rather than one entry per pause in typing.
  let draft = false;

  function showError(message) {
    errorEl.textContent = message;
    errorEl.hidden = false;
    empty.hidden = true;
  }

  async function getJSON(url) {
    const res = await fetch(url, { headers: { Accept: "application/json" } });
    let body = null;
    try { body = await res.json(); } catch (e) { /* not JSON */ }
    if (!res.ok) throw new Error((body && body.error) || ("HTTP " + res.status));
    return body;
  }

  function render(items, note) {
    results.replaceChildren();
    errorEl.hidden = true;
    for (const item of items) {
      const p = item.prompt || item;
      const li = card.content.firstElementChild.cloneNode(true);
      li.querySelector(".genre").textContent = p.genre;
      li.querySelector(".theme").textContent = p.theme;
      li.querySelector(".title").textContent = p.title;
      li.querySelector(".text").textContent = p.text;
      li.querySelector(".score").textContent = item.score !== undefined ? "score " + item.score.toFixed(3) : "";
      li.dataset.id = p.id;
      li.querySelector(".copy").addEventListener("click", (ev) => copy(p, ev.target));
      results.appendChild(li);
    }
    empty.hidden = items.length > 0;
    statusEl.textContent = note;
  }

  async function copy(p, button) {
    const text = p.title + "\n\n" + p.text;
    try {
      await navigator.clipboard.writeText(text);
    } catch (e) {
      const area = document.createElement("textarea");
      area.value = text; document.body.appendChild(area); area.select();
      try { document.execCommand("copy"); } catch (e2) { /* ignore */ }
      area.remove();
    }
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = "Copy prompt"; }, 1500);
  }

  function params() {
    const p = new URLSearchParams();
    if (genre.value) p.set("genre", genre.value);
    if (theme.value) p.set("theme", theme.value);
    return p;
  }

  async function search() {
    const text = q.value.trim();
    const mine = ++seq;
    if (!text) { render([], ""); return; }
    const p = params(); p.set("q", text); p.set("k", "10");
    statusEl.textContent = "Searching…";
    try {
      const data = await getJSON("/api/search?" + p.toString());
      if (mine !== seq) return; // a newer search is on its way
      render(data.results, data.results.length ? data.results.length + " prompts" : "No prompt matches those filters.");
      if (!data.results.length) { empty.hidden = true; }
    } catch (e) {
      if (mine !== seq) return;
      results.replaceChildren(); statusEl.textContent = "";
      showError("Search failed: " + e.message);
    }
  }

  // --- the search in the URL ---

  function formState() {
    return { q: q.value.trim(), genre: genre.value, theme: theme.value };
  }

  function stateURL(s) {
    const p = new URLSearchParams();
    if (s.q) p.set("q", s.q);
    if (s.genre) p.set("genre", s.genre);
    if (s.theme) p.set("theme", s.theme);
    const query = p.toString();
    return location.pathname + (query ? "?" + query : "");
  }

  function urlState() {
    const p = new URLSearchParams(location.search);
    return { q: (p.get("q") || "").trim(), genre: p.get("genre") || "", theme: p.get("theme") || "" };
  }

  // The option of `select` whose value matches `value` case-insensitively (as the API does), else "".
  function pick(select, value) {
    const wanted = value.trim().toLowerCase();
    if (!wanted) return "";
    for (const o of select.options) if (o.value.toLowerCase() === wanted) return o.value;
    return "";
  }

  function applyState(s) {
    q.value = s.q.slice(0, q.maxLength > 0 ? q.maxLength : undefined);
    genre.value = pick(genre, s.genre);
    theme.value = pick(theme, s.theme);
  }

  // Put the form's search in the URL: a new history entry, or the current one when that is a draft.
  // `commit` (submit, a filter change, clearing) ends the draft: the next search gets its own entry.
  function record(commit) {
    const url = stateURL(formState());
    const moved = url !== location.pathname + location.search;
    if (moved) {
      if (draft) history.replaceState(null, "", url);
      else history.pushState(null, "", url);
    }
    draft = commit ? false : draft || moved;
  }

  function commitSearch() { clearTimeout(timer); record(true); search(); }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(() => { record(false); search(); }, 250);
  }

  window.addEventListener("popstate", () => {
    clearTimeout(timer);
    draft = false;
    applyState(urlState());
    search();
  });

  async function surprise() {
    seq++;
    try {
      const p = await getJSON("/api/random?" + params().toString());
      render([p], "A random prompt");
    } catch (e) { showError("Surprise failed: " + e.message); }
  }

  // --- which system answers: one quiet line, nothing at all when the server has no /api/info ---

  function score(v) { return typeof v === "number" && Number.isFinite(v); }

  function infoText(data) {
    if (!data || typeof data.system !== "string" || !data.system.trim()) return "";
    let text = data.system.trim();
    if (score(data["test_ndcg@10"])) text += " · test NDCG@10 " + data["test_ndcg@10"].toFixed(2);
    else if (score(data["dev_ndcg@10"])) text += " · dev NDCG@10 " + data["dev_ndcg@10"].toFixed(2);
    return text;
  }

  async function loadInfo() {
    try {
      const text = infoText(await getJSON("/api/info"));
      info.textContent = text;
      info.hidden = !text;
    } catch (e) {
      info.textContent = ""; info.hidden = true; // older server, or it failed: say nothing
    } finally {
      info.dataset.state = info.hidden ? "none" : "shown";
    }
  }

  async function init() {
    let facets = false;
    try {
      const f = await getJSON("/api/facets");
      for (const g of f.genres) genre.add(new Option(g.name + " (" + g.count + ")", g.name));
      for (const t of f.themes) theme.add(new Option(t.name + " (" + t.count + ")", t.name));
      statusEl.textContent = f.total + " prompts";
      facets = true;
    } catch (e) { showError("Could not load the prompt library: " + e.message); }
    if (location.search) {
      applyState(urlState());
      // spell the URL as the form reads it (canonical genre names, unknown filters dropped)
      if (facets) history.replaceState(null, "", stateURL(formState()));
    }
    if (q.value.trim()) search();
    else empty.hidden = false;
  }

  q.addEventListener("input", schedule);
  genre.addEventListener("change", commitSearch);
  theme.addEventListener("change", commitSearch);
  $("surprise").addEventListener("click", surprise);
  $("search-form").addEventListener("submit", (ev) => { ev.preventDefault(); commitSearch(); });
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "/" && document.activeElement !== q) { ev.preventDefault(); q.focus(); }
    if (ev.key === "Escape" && document.activeElement === q) { q.value = ""; commitSearch(); }
  });
  loadInfo();
  init();
})();
