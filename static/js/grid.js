// The grid: runs as columns (oldest on the left, a bar whose height is the run's
// duration), tasks as rows inside their collapsible groups, each cell a task instance in
// its state's colour. Every cell is a link, so the grid is walkable with the keyboard.

import { h, summarize, fmtDuration, durationOf, fmtTimeZone } from "./ui.js";
import { href } from "./router.js";

/** Rows to show: `{node, depth}` for every task and group, children of collapsed groups left out. */
export function visibleRows(nodes, collapsed, depth = 0, out = []) {
  for (const n of nodes) {
    out.push({ node: n, depth });
    if (n.type === "task_group" && !collapsed.has(n.id)) visibleRows(n.children, collapsed, depth + 1, out);
  }
  return out;
}

/** Every task id inside a node (itself for a task). */
export function taskIds(node, out = []) {
  if (node.type === "task") out.push(node.id);
  else for (const c of node.children) taskIds(c, out);
  return out;
}

/**
 * Builds the grid table. `grid.dag_runs` is oldest first; `selected` is `{run, task}`;
 * `onToggle(groupId)` collapses or expands a group; `keep` is the query every link keeps.
 */
export function renderGrid({ dagId, view, structure, grid, collapsed, selected, onToggle, onToggleAll, keep = {} }) {
  const runs = grid.dag_runs;
  const rows = visibleRows(structure.nodes, collapsed);
  const max = Math.max(1, ...runs.map((r) => durationOf(r) ?? 0));
  // Links keep the page of runs and the filters (`keep`) the grid was drawn with.
  const link = (q) => href(["dags", dagId, view], { ...keep, ...q });

  const head = h("tr", {},
    h("th", { class: "corner", scope: "col" },
      h("div", { class: "corner-inner" },
        h("span", {}, "Task"),
        hasGroups(structure.nodes) ? h("span", { class: "corner-actions" },
          h("button", { type: "button", class: "icon-btn small", title: "Expand all groups", "aria-label": "Expand all groups", onclick: () => onToggleAll(false) }, "⊞"),
          h("button", { type: "button", class: "icon-btn small", title: "Collapse all groups", "aria-label": "Collapse all groups", onclick: () => onToggleAll(true) }, "⊟")) : null)),
    runs.map((r) => {
      const dur = durationOf(r);
      const pct = Math.max(8, Math.round(((dur ?? 0) / max) * 100));
      const sel = selected.run === r.dag_run_id;
      return h("th", { scope: "col", class: `run-col ${sel ? "sel" : ""}` },
        h("a", {
          href: link({ run: r.dag_run_id }), class: "run-bar-link", dataset: { key: `run:${r.dag_run_id}` },
          "aria-label": `Run ${r.dag_run_id}: ${r.state}`, "aria-current": sel ? "true" : null,
          title: `${r.dag_run_id}\nState: ${r.state}\nRun after: ${fmtTimeZone(r.run_after)}${dur != null ? `\nDuration: ${fmtDuration(dur)}` : ""}`,
        }, h("span", { class: `run-bar st-${r.state}`, style: `height:${pct}%` })));
    }));

  const body = rows.map(({ node, depth }) => {
    const isGroup = node.type === "task_group";
    const ids = isGroup ? taskIds(node) : [node.id];
    const rowSel = !isGroup && selected.task === node.id;
    const name = isGroup
      ? h("button", {
        type: "button", class: "group-toggle", "aria-expanded": String(!collapsed.has(node.id)),
        title: node.tooltip ?? node.id, onclick: () => onToggle(node.id), dataset: { key: `group:${node.id}` },
      }, h("span", { class: "caret", "aria-hidden": "true" }, collapsed.has(node.id) ? "▸" : "▾"), node.label,
      h("span", { class: "muted small" }, ` ${ids.length}`))
      : h("a", {
        href: link({ run: selected.run ?? runs.at(-1)?.dag_run_id, task: node.id }), class: "task-name",
        title: node.id, dataset: { key: `task:${node.id}` },
      }, node.label, node.is_mapped ? h("span", { class: "muted small", title: "Mapped task" }, " [ ]") : null);
    return h("tr", { class: `${isGroup ? "group-row" : "task-row"} ${rowSel ? "sel" : ""}` },
      h("th", { scope: "row", class: "name", style: `padding-left:${0.5 + depth * 1.1}rem` }, name),
      runs.map((r) => {
        const tis = r.task_instances ?? {};
        const sel = selected.run === r.dag_run_id;
        if (isGroup) {
          const st = summarize(ids.map((id) => tis[id]?.state ?? null));
          return h("td", { class: `cell ${sel ? "sel" : ""}` },
            h("span", { class: `sq group st-${st ?? "none"}`, title: `${node.id} · ${r.dag_run_id}: ${st ?? "no status"}` }));
        }
        const ti = tis[node.id];
        const st = ti?.state ?? null;
        const cellSel = sel && selected.task === node.id;
        // A mapped task's cell sums up its instances: their count by state.
        const counts = ti?.map_count != null
          ? `\n${ti.map_count} mapped: ${Object.entries(ti.child_states ?? {}).map(([s, n]) => `${n} ${s.replaceAll("_", " ")}`).join(", ")}`
          : "";
        return h("td", { class: `cell ${sel ? "sel" : ""}` },
          h("a", {
            href: link({ run: r.dag_run_id, task: node.id }), class: `sq st-${st ?? "none"} ${ti?.map_count != null ? "mapped" : ""} ${cellSel ? "current" : ""}`,
            dataset: { key: `ti:${r.dag_run_id}:${node.id}` },
            "aria-label": `${node.id} in ${r.dag_run_id}: ${st ?? "no status"}`,
            "aria-current": cellSel ? "true" : null,
            title: `${node.id}\n${r.dag_run_id}\n${st ?? "no status"}${ti?.try_number > 1 ? ` (try ${ti.try_number})` : ""}${ti?.duration != null ? ` · ${fmtDuration(ti.duration)}` : ""}${counts}`,
          }));
      }));
  });

  const table = h("table", { class: "grid", "aria-label": "Runs by task" }, h("thead", {}, head), h("tbody", {}, body));
  const wrap = h("div", { class: "grid-wrap" }, table);
  if (!runs.length) wrap.append(h("p", { class: "muted empty" }, keep.run_state || keep.run_type ? "No runs match these filters." : "No runs yet. Trigger one to see it here."));
  return wrap;
}

function hasGroups(nodes) {
  return nodes.some((n) => n.type === "task_group");
}
