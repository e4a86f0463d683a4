// The API reference at /docs: renders /openapi.json (endpoints, parameters, responses) and lets you try
// each GET endpoint. Plain DOM, no dependencies, nothing loaded from elsewhere.
(function () {
  "use strict";
  const ops = document.getElementById("ops");
  const el = (tag, props, ...children) => {
    const node = Object.assign(document.createElement(tag), props || {});
    node.append(...children.filter((c) => c !== null && c !== undefined));
    return node;
  };

  function resolve(schema, spec) {
    if (schema && schema.$ref) {
      return schema.$ref.replace(/^#\//, "").split("/").reduce((o, k) => (o ? o[k] : undefined), spec) || {};
    }
    return schema || {};
  }

  function describe(schema, spec) {
    schema = resolve(schema, spec);
    if (schema.anyOf) return schema.anyOf.map((s) => describe(s, spec)).join(" | ");
    const parts = [schema.type || (schema.title ? schema.title : "any")];
    if (schema.minimum !== undefined) parts.push(">= " + schema.minimum);
    if (schema.maximum !== undefined) parts.push("<= " + schema.maximum);
    if (schema.minLength !== undefined) parts.push("min length " + schema.minLength);
    if (schema.maxLength !== undefined) parts.push("max length " + schema.maxLength);
    if (schema.pattern) parts.push("pattern " + schema.pattern);
    if (schema.enum) parts.push("one of: " + schema.enum.join(", "));
    if (schema.default !== undefined && schema.default !== null) parts.push("default " + schema.default);
    return parts.join(", ");
  }

  function tryIt(path, params) {
    const inputs = {};
    const form = el("form", {});
    params.forEach((p) => {
      inputs[p.name] = el("input", { name: p.name, placeholder: p.name + (p.required ? " (required)" : "") });
      form.append(el("label", {}, p.name, inputs[p.name]));
    });
    const out = el("pre", { hidden: true });
    form.append(el("button", { type: "submit" }, "Try it"), out);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      let url = path;
      const query = new URLSearchParams();
      params.forEach((p) => {
        const v = inputs[p.name].value;
        if (p.in === "path") url = url.replace("{" + p.name + "}", encodeURIComponent(v));
        else if (v !== "") query.append(p.name, v);
      });
      const qs = query.toString();
      url += qs ? "?" + qs : "";
      out.hidden = false;
      out.textContent = "GET " + url + " ...";
      try {
        const res = await fetch(url, { headers: { Accept: "application/json" } });
        const text = await res.text();
        let shown = text;
        try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* not JSON */ }
        out.textContent = "GET " + url + "\n" + res.status + " " + res.statusText + "\n\n" + shown;
      } catch (e) {
        out.textContent = "GET " + url + "\nfailed: " + e;
      }
    });
    return form;
  }

  function render(spec) {
    document.getElementById("info").textContent =
      (spec.info.title || "") + " " + (spec.info.version || "") + (spec.info.description ? ": " + spec.info.description : "");
    ops.replaceChildren();
    Object.entries(spec.paths || {}).forEach(([path, methods]) => {
      Object.entries(methods).forEach(([method, op]) => {
        const params = op.parameters || [];
        const box = el("section", { className: "op" },
          el("h2", {}, el("span", { className: "method" }, method.toUpperCase()), path),
          op.summary ? el("p", {}, op.summary) : null,
          op.description ? el("p", { className: "muted" }, op.description) : null);
        if (params.length) {
          const table = el("table", {}, el("tr", {}, el("th", {}, "parameter"), el("th", {}, "in"), el("th", {}, "schema"), el("th", {}, "about")));
          params.forEach((p) => table.append(el("tr", {},
            el("td", {}, el("code", {}, p.name + (p.required ? " *" : ""))),
            el("td", {}, p.in),
            el("td", {}, describe(p.schema, spec)),
            el("td", {}, p.description || (p.schema && p.schema.description) || ""))));
          box.append(table);
        }
        const codes = Object.entries(op.responses || {}).map(([code, r]) => code + " " + (r.description || ""));
        box.append(el("p", { className: "muted" }, "Responses: " + codes.join(" · ")));
        if (method === "get") box.append(tryIt(path, params));
        ops.append(box);
      });
    });
  }

  fetch("/openapi.json")
    .then((res) => { if (!res.ok) throw new Error("HTTP " + res.status); return res.json(); })
    .then(render)
    .catch((e) => { ops.replaceChildren(el("p", {}, "Could not load /openapi.json: " + e)); });
})();
