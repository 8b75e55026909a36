// Admin pages: variables, connections and pools, each a list with a search box and a
// form to create, edit and delete. One generic page driven by a description of the
// resource. Edits send only the changed fields (`update_mask`), so a masked password or
// secret value is never written back as `***`.

import { api, ApiError } from "./api.js";
import { put, h, modal, confirm, notify, errorBox } from "./ui.js";
import { setQuery } from "./router.js";

const RESOURCES = {
  variables: {
    title: "Variables",
    noun: "variable",
    list: "api/v2/variables",
    key: "variables",
    id: "key",
    pattern: "variable_key_pattern",
    orderBy: "key",
    fields: [
      { name: "key", label: "Key", required: true, fixedOnEdit: true },
      { name: "value", label: "Value", kind: "textarea", required: true, mono: true },
      { name: "description", label: "Description", kind: "textarea", nullable: true },
    ],
    columns: [
      ["Key", (v) => h("code", {}, v.key)],
      ["Value", (v) => h("span", { class: "mono clip", title: v.value }, v.value)],
      ["Description", (v) => v.description ?? ""],
    ],
  },
  connections: {
    title: "Connections",
    noun: "connection",
    list: "api/v2/connections",
    key: "connections",
    id: "connection_id",
    pattern: "connection_id_pattern",
    orderBy: "connection_id",
    fields: [
      { name: "connection_id", label: "Connection ID", required: true, fixedOnEdit: true },
      { name: "conn_type", label: "Type", required: true, list: ["http", "postgres", "mysql", "sqlite", "fs", "generic", "ssh", "aws", "google_cloud_platform", "smtp"] },
      { name: "description", label: "Description", nullable: true },
      { name: "host", label: "Host", nullable: true },
      { name: "schema", label: "Schema", nullable: true },
      { name: "login", label: "Login", nullable: true, autocomplete: "off" },
      { name: "password", label: "Password", kind: "password", nullable: true, secret: true },
      { name: "port", label: "Port", kind: "integer", nullable: true },
      { name: "extra", label: "Extra (JSON)", kind: "textarea", nullable: true, json: true, mono: true },
      // FSHook's own form field, kept in `extra` as {"path": ...}.
      { name: "path", label: "Path", onlyFor: "fs", extraKey: "path", help: "The base folder file sensors resolve relative paths against." },
    ],
    // What each connection type's form shows, as its Airflow hook's form does: the
    // fields it hides, their labels and hints.
    typeField: "conn_type",
    byType: {
      http: {
        labels: { host: "Host", schema: "Schema", login: "Login (basic auth)", password: "Password (basic auth)", extra: "Extra (JSON: headers)" },
        help: {
          host: "api.example.com, or a full base URL such as https://api.example.com/v1",
          schema: "http or https (http when empty)",
          extra: 'Each key is sent as a header, e.g. {"Authorization": "Bearer ..."}; "timeout", "verify" and "check_response" set the request.',
        },
      },
      sqlite: {
        hide: ["schema", "login", "password", "port"],
        labels: { host: "Database file" },
        help: { host: "The path of the SQLite file, e.g. C:\\data\\app.db or /data/app.db" },
      },
      fs: {
        hide: ["host", "schema", "login", "password", "port"],
      },
    },
    columns: [
      ["Connection ID", (c) => h("code", {}, c.connection_id)],
      ["Type", (c) => c.conn_type],
      ["Host", (c) => [c.host, c.port].filter((x) => x !== null && x !== undefined && x !== "").join(":")],
      ["Login", (c) => c.login ?? ""],
      ["Password", (c) => (c.password ? h("span", { class: "masked", "aria-label": "set, hidden" }, "••••••") : h("span", { class: "muted" }, "–"))],
      ["Description", (c) => c.description ?? ""],
    ],
  },
  pools: {
    title: "Pools",
    noun: "pool",
    list: "api/v2/pools",
    key: "pools",
    id: "name",
    pattern: "pool_name_pattern",
    orderBy: "id",
    fields: [
      { name: "name", label: "Name", required: true, fixedOnEdit: true },
      { name: "slots", label: "Slots", kind: "integer", required: true, help: "-1 for unlimited" },
      { name: "description", label: "Description", nullable: true },
      { name: "include_deferred", label: "Count deferred tasks as using slots", kind: "boolean" },
    ],
    // PATCH /pools/{name} names the pool field `pool`, not `name`.
    patchName: { name: "pool" },
    undeletable: (p) => p.name === "default_pool",
    columns: [
      ["Pool", (p) => h("code", {}, p.name)],
      ["Slots", (p) => (p.slots < 0 ? "∞" : String(p.slots)), "num"],
      ["Running", (p) => String(p.running_slots ?? 0), "num"],
      ["Queued", (p) => String(p.queued_slots ?? 0), "num"],
      ["Scheduled", (p) => String(p.scheduled_slots ?? 0), "num"],
      ["Open", (p) => (p.open_slots < 0 ? "∞" : String(p.open_slots ?? "")), "num"],
      ["Description", (p) => p.description ?? ""],
    ],
  },
};

export function adminPage(main, route) {
  const which = route.segments[1];
  const R = RESOURCES[which];
  if (!R) {
    main.append(h("section", { class: "empty-page" }, h("h1", {}, "Page not found"), h("a", { href: "dags", class: "btn primary" }, "Go to the DAGs")));
    return {};
  }
  document.title = `${R.title} · updraft`;
  const search = h("input", { type: "search", id: "admin-search", placeholder: `Search ${R.title.toLowerCase()}`, "aria-label": `Search ${R.title.toLowerCase()}`, value: route.query.get("search") ?? "" });
  const body = h("tbody", {}, h("tr", {}, h("td", { colspan: R.columns.length + 1, class: "muted" }, "Loading…")));
  const count = h("span", { class: "muted count" });
  main.append(h("section", { class: "page" },
    h("header", { class: "page-head" }, h("h1", {}, R.title), count, h("span", { class: "spacer" }),
      h("button", { type: "button", class: "btn primary", id: "add", onclick: () => edit(null) }, `Add ${R.noun}`)),
    h("div", { class: "toolbar" }, search),
    h("div", { class: "table-wrap" }, h("table", { class: `admin ${which}` },
      h("thead", {}, h("tr", {}, R.columns.map(([label, , cls]) => h("th", { class: cls ?? "" }, label)), h("th", { class: "col-actions" }, h("span", { class: "sr-only" }, "Actions")))),
      body))));

  let debounce;
  search.addEventListener("input", () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => {
      setQuery({ search: search.value });
      load();
    }, 250);
  });

  async function load() {
    try {
      const res = await api(R.list, { query: { limit: 100, order_by: R.orderBy, [R.pattern]: search.value || null } });
      const items = res[R.key] ?? [];
      count.textContent = `${res.total_entries ?? items.length}`;
      put(body, ...(items.length ? items.map(row) : [h("tr", {}, h("td", { colspan: R.columns.length + 1, class: "empty" }, search.value ? `No ${R.noun} matches.` : `No ${R.title.toLowerCase()} yet.`))]));
    } catch (e) {
      put(body, h("tr", {}, h("td", { colspan: R.columns.length + 1 }, errorBox(e))));
    }
  }

  function row(item) {
    const id = item[R.id];
    return h("tr", { dataset: { id } },
      R.columns.map(([, cell, cls]) => h("td", { class: cls ?? "" }, cell(item))),
      h("td", { class: "col-actions" },
        h("button", { type: "button", class: "btn small", "aria-label": `Edit ${id}`, onclick: () => edit(item) }, "Edit"),
        R.undeletable?.(item) ? null : h("button", { type: "button", class: "btn small danger-text", "aria-label": `Delete ${id}`, onclick: () => remove(item) }, "Delete")));
  }

  async function remove(item) {
    const id = item[R.id];
    if (!(await confirm(`Delete ${R.noun} ${id}?`, h("p", {}, "This cannot be undone."), { label: "Delete", danger: true }))) return;
    try {
      await api(`${R.list}/${encodeURIComponent(id)}`, { method: "DELETE" });
      notify(`Deleted ${id}`, "success");
      load();
    } catch (e) {
      notify(e.message, "error");
    }
  }

  async function edit(item) {
    const isNew = item === null;
    const inputs = new Map();
    const errs = new Map();
    const rowEls = new Map();
    const labelEls = new Map();
    const helpEls = new Map();
    const extraOf = (it) => {
      try {
        return JSON.parse(it?.extra || "{}") ?? {};
      } catch {
        return {};
      }
    };
    const rows = R.fields.map((f) => {
      const id = `f-${f.name}`;
      let input;
      const initial = f.extraKey ? extraOf(item)[f.extraKey] : item?.[f.name];
      if (f.kind === "textarea") input = h("textarea", { id, rows: f.mono ? 5 : 2, class: f.mono ? "code" : "", spellcheck: f.mono ? "false" : null });
      else if (f.kind === "boolean") input = h("input", { id, type: "checkbox", checked: Boolean(initial) });
      else if (f.kind === "password") input = h("input", { id, type: "password", autocomplete: "new-password", placeholder: !isNew && initial ? "unchanged (type to replace)" : "" });
      else input = h("input", { id, type: "text", inputmode: f.kind === "integer" ? "numeric" : null, list: f.list ? `${id}-list` : null, autocomplete: f.autocomplete ?? null });
      if (f.kind !== "boolean" && !f.secret) input.value = initial === null || initial === undefined ? "" : String(initial);
      if (f.fixedOnEdit && !isNew) input.readOnly = true;
      input.name = f.name;
      input.setAttribute("aria-describedby", `${id}-error`);
      inputs.set(f.name, input);
      const err = h("p", { class: "field-error", id: `${id}-error`, hidden: true });
      errs.set(f.name, err);
      const labelText = h("span", {}, f.label);
      labelEls.set(f.name, labelText);
      const help = h("p", { class: "help", hidden: !f.help }, f.help ?? "");
      helpEls.set(f.name, help);
      const row = h("div", { class: `field ${f.kind === "boolean" ? "check" : ""}` },
        f.kind === "boolean" ? [input, h("label", { for: id }, labelText)] : [h("label", { for: id }, labelText, f.required ? h("span", { class: "req", "aria-hidden": "true" }, " *") : null), input],
        f.list ? h("datalist", { id: `${id}-list` }, f.list.map((x) => h("option", { value: x }))) : null,
        help,
        err);
      rowEls.set(f.name, row);
      return row;
    });
    // The fields, labels and hints of the chosen type (connections).
    const typeNow = () => (R.typeField ? inputs.get(R.typeField).value.trim() : "");
    const shown = (f) => {
      const t = typeNow();
      return !(R.byType?.[t]?.hide ?? []).includes(f.name) && (!f.onlyFor || f.onlyFor === t);
    };
    const applyType = () => {
      const b = R.byType?.[typeNow()] ?? {};
      for (const f of R.fields) {
        rowEls.get(f.name).hidden = !shown(f);
        labelEls.get(f.name).textContent = b.labels?.[f.name] ?? f.label;
        const text = b.help?.[f.name] ?? f.help ?? "";
        helpEls.get(f.name).textContent = text;
        helpEls.get(f.name).hidden = !text;
      }
    };
    if (R.typeField) {
      inputs.get(R.typeField).addEventListener("input", applyType);
      applyType();
    }
    const showErr = (name, msg) => {
      const e = errs.get(name);
      const input = inputs.get(name);
      if (!e) return false;
      e.textContent = msg ?? "";
      e.hidden = !msg;
      if (msg) input.setAttribute("aria-invalid", "true");
      else input.removeAttribute("aria-invalid");
      return true;
    };

    const ok = await modal({
      title: isNew ? `Add ${R.noun}` : `Edit ${R.noun} ${item[R.id]}`,
      content: h("div", { class: "admin-form" }, rows),
      submitLabel: isNew ? "Create" : "Save",
      onSubmit: async () => {
        const values = {};
        const changed = [];
        let bad = false;
        const extraValues = {};
        for (const f of R.fields) {
          const input = inputs.get(f.name);
          showErr(f.name, null);
          if (f.extraKey) {
            // Kept in `extra`, merged below; only for the type that shows it.
            if (shown(f) && input.value !== "") extraValues[f.extraKey] = input.value;
            continue;
          }
          let v;
          if (f.kind === "boolean") v = input.checked;
          else if (input.value === "") {
            if (f.required) {
              showErr(f.name, "Required.");
              bad = true;
              continue;
            }
            if (f.secret && !isNew) continue;
            v = null;
          } else if (f.kind === "integer") {
            if (!/^-?\d+$/.test(input.value.trim())) {
              showErr(f.name, "Enter a whole number.");
              bad = true;
              continue;
            }
            v = Number(input.value);
          } else {
            v = input.value;
            if (f.json) {
              try {
                JSON.parse(v);
              } catch (e) {
                showErr(f.name, `Not valid JSON: ${e.message}`);
                bad = true;
                continue;
              }
            }
          }
          values[f.name] = v;
          const before = item?.[f.name] ?? (f.kind === "boolean" ? false : null);
          if (isNew || f.secret || JSON.stringify(v) !== JSON.stringify(before)) changed.push(f.name);
        }
        if (bad) {
          document.querySelector("dialog [aria-invalid=true]")?.focus();
          throw new Error("Fix the fields marked in red.");
        }
        if (Object.keys(extraValues).length) {
          let extra = {};
          try {
            extra = values.extra ? JSON.parse(values.extra) : {};
          } catch {
            extra = {};
          }
          values.extra = JSON.stringify({ ...extra, ...extraValues });
          if (!changed.includes("extra") && values.extra !== (item?.extra ?? null)) changed.push("extra");
        }
        try {
          if (isNew) {
            await api(R.list, { method: "POST", body: values });
          } else {
            const body = {};
            for (const [k, v] of Object.entries(values)) body[R.patchName?.[k] ?? k] = v;
            const mask = changed.filter((k) => !R.fields.find((f) => f.name === k)?.fixedOnEdit).map((k) => R.patchName?.[k] ?? k);
            if (!mask.length) return true;
            await api(`${R.list}/${encodeURIComponent(item[R.id])}`, { method: "PATCH", body, query: { update_mask: mask } });
          }
        } catch (e) {
          if (e instanceof ApiError) {
            let placed = false;
            for (const [k, msg] of Object.entries(e.fields())) placed = showErr(k === "pool" ? "name" : k, msg) || placed;
            if (e.status === 409) placed = showErr(R.id, e.message) || placed;
            if (placed) throw new Error("The server refused some fields.");
          }
          throw e;
        }
        return true;
      },
    });
    if (ok) {
      notify(isNew ? `Created ${inputs.get(R.id).value}` : `Saved ${item[R.id]}`, "success");
      load();
    }
  }

  load();
  return {
    update(r) {
      search.value = r.query.get("search") ?? "";
      load();
    },
    unmount: () => clearTimeout(debounce),
  };
}
