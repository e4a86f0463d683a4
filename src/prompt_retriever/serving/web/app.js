// prompt-retriever web page: search as you type (debounced), filters, copy, surprise me. No dependencies.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const q = $("q"), genre = $("genre"), theme = $("theme"), results = $("results");
  const statusEl = $("status"), empty = $("empty"), errorEl = $("error"), card = $("card");
  let timer = null, seq = 0;

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

  function schedule() { clearTimeout(timer); timer = setTimeout(search, 250); }

  async function surprise() {
    seq++;
    try {
      const p = await getJSON("/api/random?" + params().toString());
      render([p], "A random prompt");
    } catch (e) { showError("Surprise failed: " + e.message); }
  }

  async function init() {
    try {
      const f = await getJSON("/api/facets");
      for (const g of f.genres) genre.add(new Option(g.name + " (" + g.count + ")", g.name));
      for (const t of f.themes) theme.add(new Option(t.name + " (" + t.count + ")", t.name));
      statusEl.textContent = f.total + " prompts";
    } catch (e) { showError("Could not load the prompt library: " + e.message); }
    empty.hidden = false;
  }

  q.addEventListener("input", schedule);
  genre.addEventListener("change", search);
  theme.addEventListener("change", search);
  $("surprise").addEventListener("click", surprise);
  $("search-form").addEventListener("submit", (ev) => { ev.preventDefault(); clearTimeout(timer); search(); });
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "/" && document.activeElement !== q) { ev.preventDefault(); q.focus(); }
    if (ev.key === "Escape" && document.activeElement === q) { q.value = ""; search(); }
  });
  init();
})();
