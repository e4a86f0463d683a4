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
  // Feedback (only when the server says it takes events: `feedback` in a search answer): what the writer
  // does with a result is reported to POST /api/events, linked to the search's query_id. The client id is
  // a random one kept in this browser (localStorage), made the first time it is needed, never derived
  // from anything about the browser or the writer.
  const CLIENT_KEY = "prompt-retriever.client_id";
  let clientId = null;
  // The current history entry was made by search-as-you-type and not submitted yet: further typing and
  // the submit update it in place, so one search is one entry rather than one entry per pause in typing.
  let draft = false;

  function showError(message) {
    errorEl.textContent = message;
    errorEl.hidden = false;
    empty.hidden = true;
  }

  async function getJSON(url, headers) {
    const res = await fetch(url, { headers: { Accept: "application/json", ...(headers || {}) } });
    let body = null;
    try { body = await res.json(); } catch (e) { /* not JSON */ }
    if (!res.ok) throw new Error((body && body.error) || ("HTTP " + res.status));
    return body;
  }

  function storedClientId() {
    if (clientId) return clientId;
    try { clientId = localStorage.getItem(CLIENT_KEY); } catch (e) { /* storage off: none kept */ }
    return clientId;
  }

  function newClientId() {
    if (storedClientId()) return clientId;
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    clientId = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    try { localStorage.setItem(CLIENT_KEY, clientId); } catch (e) { /* kept for this page only */ }
    return clientId;
  }

  // One event about result `rank` (prompt `id`) of search `queryId`; failures are ignored (never shown).
  function report(queryId, action, id, rank) {
    const body = {
      action_name: action, query_id: queryId, client_id: newClientId(),
      event_attributes: { object: { object_id: id }, position: { ordinal: rank } },
    };
    fetch("/api/events", {
      method: "POST", keepalive: true, headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    }).catch(() => {});
  }

  // `answer`: the search answer (its query_id and feedback flag) the items come from; null for "surprise me".
  function render(items, note, answer) {
    results.replaceChildren();
    errorEl.hidden = true;
    const reporting = !!(answer && answer.feedback && answer.query_id);
    for (const item of items) {
      const p = item.prompt || item;
      const li = card.content.firstElementChild.cloneNode(true);
      const send = (action) => { if (reporting) report(answer.query_id, action, p.id, item.rank); };
      li.querySelector(".genre").textContent = p.genre;
      li.querySelector(".theme").textContent = p.theme;
      li.querySelector(".title").textContent = p.title;
      li.querySelector(".text").textContent = p.text;
      li.querySelector(".score").textContent = item.score !== undefined ? "score " + item.score.toFixed(3) : "";
      li.dataset.id = p.id;
      li.querySelector(".copy").addEventListener("click", (ev) => { copy(p, ev.target); send("copy"); });
      const title = li.querySelector(".title");
      const open = () => {
        if (!li.classList.contains("open")) send("open"); // once per card: the writer opened it
        li.classList.add("open");
        title.setAttribute("aria-expanded", "true");
      };
      title.addEventListener("click", open);
      title.addEventListener("keydown", (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); open(); } });
      const rate = li.querySelector(".rate");
      rate.hidden = !reporting;
      for (const [cls, action, done] of [["use", "use", "Using it"], ["up", "thumbs_up", null], ["down", "thumbs_down", null]]) {
        const button = li.querySelector("." + cls);
        button.addEventListener("click", () => {
          if (button.getAttribute("aria-pressed") === "true") return; // one of each per card
          send(action);
          button.setAttribute("aria-pressed", "true");
          if (done) button.textContent = done;
        });
      }
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
      if (!storedClientId()) await infoLoaded; // a server that takes events: this first search carries the id too
      const id = storedClientId();
      const data = await getJSON("/api/search?" + p.toString(), id ? { "X-Client-Id": id } : {});
      if (mine !== seq) return; // a newer search is on its way
      if (data.feedback) newClientId(); // this server takes events: the next searches carry the id too
      const note = data.results.length ? data.results.length + " prompts" : "No prompt matches those filters.";
      render(data.results, note, data);
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
      render([p], "A random prompt", null);
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

  // the run served (name, when made, since when current, model), a second quiet line; none when no run
  function runText(data) {
    const str = (v) => typeof v === "string" && v.trim() ? v.trim() : "";
    if (!data || !str(data.run)) return "";
    const parts = ["run " + str(data.run)];
    if (str(data.created)) parts.push("made " + str(data.created).slice(0, 10));
    if (str(data.current_since)) parts.push("current since " + str(data.current_since).slice(0, 10));
    if (str(data.model_fingerprint)) parts.push("model " + str(data.model_fingerprint));
    return parts.join(" · ");
  }

  async function loadInfo() {
    const runLine = $("run-info");
    try {
      const data = await getJSON("/api/info");
      if (data && data.feedback === true) newClientId(); // searches are recorded: chained by this id (query chains)
      const text = infoText(data);
      info.textContent = text;
      info.hidden = !text;
      if (runLine) { runLine.textContent = runText(data); runLine.hidden = !runLine.textContent; }
    } catch (e) {
      info.textContent = ""; info.hidden = true; // older server, or it failed: say nothing
      if (runLine) { runLine.textContent = ""; runLine.hidden = true; }
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
  const infoLoaded = loadInfo(); // never rejects
  init();
})();
