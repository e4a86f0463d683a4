// prompt-retriever judging page (/judge): the collection's owner rates the top results of a query 0/1/2
// and saves them to the server's judged query set (POST /api/judgments). No dependencies.
// The admin token is asked for once, kept in this tab's sessionStorage only, and sent as
// `Authorization: Bearer` with every API request of this page. Every text from the server (queries,
// titles, prompt texts, error messages) is put in the page as text (textContent, Option), never as HTML.
(function () {
  "use strict";
  const TOKEN_KEY = "prompt-retriever.admin-token";
  const $ = (id) => document.getElementById(id);
  const tokenForm = $("token-form"), tokenInput = $("token"), judging = $("judging");
  const logged = $("logged"), logNote = $("log-note"), queryForm = $("query-form"), jq = $("jq"), kSelect = $("k");
  const statusEl = $("status"), errorEl = $("error"), results = $("results"), kept = $("kept");
  const saveBar = $("save-bar"), saveButton = $("save"), progress = $("progress"), card = $("card");

  let token = null;
  // The query on the page: its text as the server spelled it, the prompts shown, and the grades shown
  // (prompt id -> 0/1/2: those saved before, then the owner's changes); `dirty` until saved.
  let current = null;
  let pos = 0;
  let dirty = false;

  class Refused extends Error {}

  function stored() { try { return sessionStorage.getItem(TOKEN_KEY); } catch (e) { return null; } }
  function keep(t) { try { sessionStorage.setItem(TOKEN_KEY, t); } catch (e) { /* kept for this page only */ } }
  function drop() { try { sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* nothing kept */ } }

  function showError(message) { errorEl.textContent = message; errorEl.hidden = false; }
  function clearError() { errorEl.textContent = ""; errorEl.hidden = true; }

  // One API request with the token; the answer's JSON, or an Error with the server's own message.
  async function api(method, url, body) {
    const headers = { Accept: "application/json", Authorization: "Bearer " + token };
    const init = { method, headers, cache: "no-store" };
    if (body !== undefined) { headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
    const res = await fetch(url, init);
    let data = null;
    try { data = await res.json(); } catch (e) { /* not JSON */ }
    if (res.status === 401) { lock("The admin token was refused: enter it again."); throw new Refused(); }
    if (!res.ok) throw new Error((data && typeof data.error === "string" && data.error) || ("HTTP " + res.status));
    return data;
  }

  // --- the token ---

  function lock(message) {
    token = null; drop(); current = null; dirty = false;
    judging.hidden = true; tokenForm.hidden = false; saveBar.hidden = true; kept.hidden = true;
    results.replaceChildren(); statusEl.textContent = "";
    if (message) showError(message); else clearError();
    tokenInput.focus();
  }

  async function unlock(t) {
    token = t;
    clearError();
    statusEl.textContent = "Checking the token…";
    try {
      await loadQueries();
    } catch (e) {
      if (!(e instanceof Refused)) { statusEl.textContent = ""; showError("Could not reach the server: " + e.message); }
      return;
    }
    keep(t);
    tokenInput.value = "";
    tokenForm.hidden = true; judging.hidden = false;
    statusEl.textContent = "Pick a query from the log, or type one.";
    jq.focus();
  }

  // --- the queries of the log ---

  function optionText(q) { return (q.judged ? "✓ " : "") + q.query + " (" + q.count + "×)"; }

  async function loadQueries() {
    const data = await api("GET", "/api/judge/queries");
    logged.replaceChildren(new Option(data.feedback ? "Pick a logged query…" : "No search log", ""));
    for (const q of data.queries) {
      const o = new Option(optionText(q), q.query);
      o.dataset.count = String(q.count);
      logged.add(o);
    }
    logged.disabled = !data.queries.length;
    if (!data.feedback) {
      logNote.textContent = "This server keeps no search log (start it with --feedback to pick from what writers " +
        "searched): type a query instead.";
    } else if (!data.queries.length) {
      logNote.textContent = "No searches logged in the last " + data.days + " days yet: type a query instead.";
    } else {
      logNote.textContent = data.queries.length + " most searched queries of the last " + data.days + " days (✓ judged).";
    }
  }

  async function markJudged() {
    // the server says which logged queries are judged (its query key: case folded, runs of white space
    // as one), so the list is read again rather than compared here with another rule
    const picked = logged.value;
    try {
      await loadQueries();
      logged.value = picked;
    } catch (e) {
      if (!(e instanceof Refused)) showError("Saved, but the log could not be read again: " + e.message);
    }
  }

  // --- the results of a query ---

  async function show() {
    const text = jq.value.trim();
    clearError();
    if (!text) { showError("Type a query, or pick one from the log."); return; }
    if (dirty && current && !window.confirm("Drop the unsaved grades of “" + current.query + "”?")) return;
    statusEl.textContent = "Searching…";
    const p = new URLSearchParams({ q: text, k: kSelect.value });
    let data;
    try {
      data = await api("GET", "/api/judge/results?" + p.toString());
    } catch (e) {
      if (!(e instanceof Refused)) { statusEl.textContent = ""; showError("Search failed: " + e.message); }
      return;
    }
    const grades = new Map();
    for (const item of data.results) if (item.grade !== null && item.grade !== undefined) grades.set(item.prompt.id, item.grade);
    current = { query: data.query, items: data.results, grades };
    dirty = false;
    render(data);
  }

  function render(data) {
    results.replaceChildren();
    pos = 0;
    data.results.forEach((item, i) => {
      const p = item.prompt;
      const li = card.content.firstElementChild.cloneNode(true);
      li.dataset.id = p.id;
      li.tabIndex = -1;
      li.querySelector(".genre").textContent = p.genre;
      li.querySelector(".theme").textContent = p.theme;
      li.querySelector(".title").textContent = p.title;
      li.querySelector(".text").textContent = p.text;
      li.querySelector(".score").textContent = "score " + item.score.toFixed(3);
      for (const button of li.querySelectorAll(".grade")) {
        button.addEventListener("click", () => { grade(i, Number(button.dataset.grade)); move(i); });
      }
      results.appendChild(li);
      paint(i);
    });
    const shown = new Set(data.results.map((item) => item.prompt.id));
    const elsewhere = Object.keys(data.saved).filter((id) => !shown.has(id)).length;
    kept.textContent = elsewhere
      ? elsewhere + " more prompt" + (elsewhere > 1 ? "s" : "") + " judged earlier for this query " +
        (elsewhere > 1 ? "are" : "is") + " not in this top " + data.k + ": those grades are kept."
      : "";
    kept.hidden = !elsewhere;
    saveBar.hidden = !data.results.length;
    statusEl.textContent = data.results.length
      ? (data.timestamp ? "Judged before, last on " + data.timestamp.slice(0, 10) + "." : "Not judged yet.") +
        " " + data.results.length + " results for “" + data.query + "”."
      : "No results for this query.";
    move(0, false);
    update();
  }

  function paint(i) {
    const li = results.children[i];
    const g = current.grades.get(current.items[i].prompt.id);
    for (const button of li.querySelectorAll(".grade")) {
      button.setAttribute("aria-pressed", String(Number(button.dataset.grade) === g));
    }
    li.querySelector(".rank").textContent = (i === pos ? "▶ " : "") + "#" + current.items[i].rank;
  }

  function grade(i, g) {
    current.grades.set(current.items[i].prompt.id, g);
    dirty = true;
    paint(i);
    update();
  }

  // Mark result `i` as the one the keys rate (and scroll to it; `focus`: move the focus there too).
  function move(i, focus) {
    if (!current || !current.items.length) return;
    const old = pos;
    pos = Math.max(0, Math.min(current.items.length - 1, i));
    paint(old);
    paint(pos);
    const li = results.children[pos];
    if (focus !== false) li.focus({ preventScroll: true });
    li.scrollIntoView({ block: "nearest" });
  }

  function update() {
    if (!current) return;
    const shownIds = current.items.map((item) => item.prompt.id);
    const rated = shownIds.filter((id) => current.grades.has(id)).length;
    progress.textContent = rated + " of " + shownIds.length + " rated" + (dirty ? " · not saved yet" : "");
  }

  async function save() {
    clearError();
    if (!current) return;
    const grades = {};
    for (const item of current.items) {
      const g = current.grades.get(item.prompt.id);
      if (g !== undefined) grades[item.prompt.id] = g;
    }
    if (!Object.keys(grades).length) { showError("Not saved: rate at least one result first."); return; }
    saveButton.disabled = true;
    try {
      const out = await api("POST", "/api/judgments", { query: current.query, grades });
      dirty = false;
      update();
      const nRel = Object.keys(out.relevant).length;
      statusEl.textContent = "Saved “" + out.query + "”: " + nRel + " relevant, " + out.nonrelevant.length +
        " not relevant (" + out.queries + " queries judged in the file).";
      await markJudged();
    } catch (e) {
      if (!(e instanceof Refused)) showError("Not saved: " + e.message);
    } finally {
      saveButton.disabled = false;
    }
  }

  // --- wiring ---

  tokenForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const t = tokenInput.value.trim();
    if (t) unlock(t);
  });
  $("forget").addEventListener("click", () => lock(""));
  logged.addEventListener("change", () => { if (logged.value) { jq.value = logged.value; show(); } });
  queryForm.addEventListener("submit", (ev) => { ev.preventDefault(); show(); });
  saveButton.addEventListener("click", save);
  document.addEventListener("keydown", (ev) => {
    if (!current || !current.items.length || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const tag = ev.target && ev.target.tagName;
    if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA") return;
    if (ev.key === "0" || ev.key === "1" || ev.key === "2") {
      ev.preventDefault();
      grade(pos, Number(ev.key));
      move(pos + 1);
    } else if (ev.key === "ArrowDown" || ev.key === "j") {
      ev.preventDefault(); move(pos + 1);
    } else if (ev.key === "ArrowUp" || ev.key === "k") {
      ev.preventDefault(); move(pos - 1);
    }
  });
  window.addEventListener("beforeunload", (ev) => { if (dirty) { ev.preventDefault(); ev.returnValue = ""; } });

  const saved = stored();
  if (saved) unlock(saved);
  else tokenInput.focus();
})();
