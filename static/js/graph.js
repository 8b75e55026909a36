// The graph: tasks laid out left to right in SVG, groups drawn as boxes around their
// tasks (click a group's title to collapse it into one node), edges as curves, and each
// task in the colour of its state in the chosen run. The layout is computed here, one
// level of groups at a time: a node's column follows its upstream nodes, its row tries
// the middle of its upstream nodes and moves down until it overlaps nothing, so group
// boxes never overlap and never contain tasks that are not theirs.

import { s, summarize } from "./ui.js";
import { href } from "./router.js";
import { taskIds } from "./grid.js";

const NODE_W = 190;
const NODE_H = 46;
const GAP_X = 56;
const GAP_Y = 16;
const PAD = 14;
const HEAD = 28;

/** Lays out `structure` with `collapsed` groups shut: leaves, group boxes, edges, size. */
export function layout(structure, collapsed) {
  const ancestry = new Map();
  (function walk(nodes, path) {
    for (const n of nodes) {
      if (n.type === "task") ancestry.set(n.id, path);
      else walk(n.children, [...path, n.id]);
    }
  })(structure.nodes, []);

  // The node a task is drawn as: itself, or its outermost collapsed group.
  const visibleOf = (t) => (ancestry.get(t) ?? []).find((g) => collapsed.has(g)) ?? t;
  // The child of `group` (null: the top level) that holds task t, or null.
  const childAt = (t, group) => {
    const path = ancestry.get(t) ?? [];
    if (group === null) return path[0] ?? t;
    const i = path.indexOf(group);
    return i < 0 ? null : path[i + 1] ?? t;
  };

  function place(children, group) {
    const items = children.map((n) => {
      if (n.type === "task_group" && !collapsed.has(n.id)) {
        const inner = place(n.children, n.id);
        const w = Math.max(inner.w + 2 * PAD, 8 * n.label.length + 60);
        return { node: n, kind: "group", inner, w, h: inner.h + HEAD + PAD };
      }
      return { node: n, kind: n.type === "task" ? "task" : "collapsed", w: NODE_W, h: NODE_H };
    });
    const byId = new Map(items.map((it) => [it.node.id, it]));
    const preds = new Map(items.map((it) => [it.node.id, new Set()]));
    for (const e of structure.edges) {
      const a = childAt(e.source_id, group);
      const b = childAt(e.target_id, group);
      if (a && b && a !== b && byId.has(a) && byId.has(b)) preds.get(b).add(a);
    }
    const placed = [];
    for (const it of items) {
      const ps = [...preds.get(it.node.id)].map((id) => byId.get(id)).filter((p) => p.x !== undefined);
      it.x = ps.length ? Math.max(...ps.map((p) => p.x + p.w + GAP_X)) : 0;
      let y = ps.length ? Math.max(0, ps.reduce((sum, p) => sum + p.y + p.h / 2, 0) / ps.length - it.h / 2) : 0;
      for (let moved = true; moved;) {
        moved = false;
        for (const o of placed) {
          const xOverlap = it.x < o.x + o.w + GAP_X / 2 && o.x < it.x + it.w + GAP_X / 2;
          const yOverlap = y < o.y + o.h + GAP_Y && o.y < y + it.h + GAP_Y;
          if (xOverlap && yOverlap) {
            y = o.y + o.h + GAP_Y;
            moved = true;
          }
        }
      }
      it.y = y;
      placed.push(it);
    }
    return {
      items,
      w: Math.max(0, ...items.map((it) => it.x + it.w)),
      h: Math.max(0, ...items.map((it) => it.y + it.h)),
    };
  }

  const top = place(structure.nodes, null);
  const leaves = [];
  const boxes = [];
  (function flatten(level, ox, oy, depth) {
    for (const it of level.items) {
      const x = ox + it.x;
      const y = oy + it.y;
      if (it.kind === "group") {
        boxes.push({ node: it.node, x, y, w: it.w, h: it.h, depth });
        flatten(it.inner, x + PAD, y + HEAD, depth + 1);
      } else leaves.push({ node: it.node, kind: it.kind, x, y, w: it.w, h: it.h });
    }
  })(top, 0, 0, 0);

  const pos = new Map(leaves.map((l) => [l.node.id, l]));
  const seen = new Set();
  const edges = [];
  for (const e of structure.edges) {
    const a = visibleOf(e.source_id);
    const b = visibleOf(e.target_id);
    const key = `${a}\u0000${b}`;
    if (a === b || seen.has(key) || !pos.has(a) || !pos.has(b)) continue;
    seen.add(key);
    edges.push({ from: pos.get(a), to: pos.get(b), source: a, target: b });
  }
  return { leaves, boxes, edges, w: top.w, h: top.h };
}

const trim = (text, n) => (text.length > n ? `${text.slice(0, n - 1)}…` : text);

/**
 * Draws the graph. Returns `{el, update(states, runId, selectedTask)}`: polling only
 * changes colours and links, so focus and scroll stay where they are.
 */
export function renderGraph({ dagId, structure, collapsed, onToggle }) {
  const L = layout(structure, collapsed);
  const M = 12;
  const W = L.w + 2 * M;
  const H = L.h + 2 * M;
  const svg = s("svg", { class: "graph", role: "group", "aria-label": "Task graph" });
  // Everything drawn sits in one layer that zoom and pan move (see `panZoom`).
  const layer = s("g", { class: "viewport" });
  const root = s("g", { transform: `translate(${M} ${M})` });
  layer.append(root);
  svg.append(s("defs", {}, s("marker", {
    id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse",
  }, s("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow-head" }))));

  const boxEls = [];
  for (const b of [...L.boxes].sort((x, y) => x.depth - y.depth)) {
    const ids = taskIds(b.node);
    const head = s("g", {
      // Named by its visible text (label and count); aria-expanded says what a press does.
      class: "group-head", tabindex: 0, role: "button", "aria-expanded": "true", onclick: () => onToggle(b.node.id),
      onkeydown: (e) => {
        if (e.key === "Enter" || e.key === " ") {
          e.preventDefault();
          onToggle(b.node.id);
        }
      },
    },
    s("rect", { class: "group-head-bg", x: b.x, y: b.y, width: b.w, height: HEAD - 4, rx: 8 }),
    s("text", { x: b.x + 10, y: b.y + 17, class: "group-label" }, `▾ ${b.node.label}`),
    s("text", { x: b.x + b.w - 10, y: b.y + 17, class: "group-count", "text-anchor": "end" }, `${ids.length} task${ids.length === 1 ? "" : "s"}`));
    const g = s("g", { class: "group-box" },
      s("title", {}, b.node.tooltip ? `${b.node.id}: ${b.node.tooltip}` : b.node.id),
      s("rect", { class: "group-bg", x: b.x, y: b.y, width: b.w, height: b.h, rx: 10 }),
      head);
    boxEls.push({ g, ids });
    root.append(g);
  }

  const edgeLayer = s("g", { class: "edges" });
  for (const e of L.edges) {
    const x1 = e.from.x + e.from.w;
    const y1 = e.from.y + e.from.h / 2;
    const x2 = e.to.x;
    const y2 = e.to.y + e.to.h / 2;
    const dx = Math.max(30, Math.abs(x2 - x1) / 2);
    edgeLayer.append(s("path", {
      class: "edge", d: `M ${x1} ${y1} C ${x1 + dx} ${y1}, ${x2 - dx} ${y2}, ${x2} ${y2}`, "marker-end": "url(#arrow)",
      dataset: { source: e.source, target: e.target },
    }));
  }
  root.append(edgeLayer);

  const nodeEls = [];
  for (const l of L.leaves) {
    const n = l.node;
    const isTask = l.kind === "task";
    const ids = isTask ? [n.id] : taskIds(n);
    const sub = s("text", { x: l.x + 16, y: l.y + 35, class: "node-sub" }, isTask ? n.operator : `${ids.length} tasks`);
    const body = [
      s("title", {}, n.id),
      s("rect", { class: "node-bg", x: l.x, y: l.y, width: l.w, height: l.h, rx: 7 }),
      s("rect", { class: "node-state", x: l.x, y: l.y, width: 7, height: l.h, rx: 3 }),
      // The trailing space (not drawn) keeps the label and the line below two words in the text read out.
      s("text", { x: l.x + 16, y: l.y + 19, class: "node-label" }, `${isTask ? "" : "▸ "}${trim(n.label, 22)} `),
      sub,
    ];
    let el;
    if (isTask) {
      el = s("a", { class: "node task-node", href: href(["dags", dagId, "graph"], { task: n.id }), dataset: { key: `node:${n.id}` }, "aria-label": trim(n.label, 22) }, body);
    } else {
      el = s("g", {
        // Named by its visible text, as a group's head is; aria-expanded says a press opens it.
        class: "node group-node", tabindex: 0, role: "button", "aria-expanded": "false", "aria-label": `${trim(n.label, 22)} ${ids.length} tasks`,
        onclick: () => onToggle(n.id),
        onkeydown: (e) => {
          if (e.key === "Enter" || e.key === " ") {
            e.preventDefault();
            onToggle(n.id);
          }
        },
      }, body);
    }
    nodeEls.push({ el, ids, sub, node: n, isTask });
    root.append(el);
  }
  svg.append(layer);

  return {
    el: svg,
    layer,
    size: { w: W, h: H },
    /**
     * Colours nodes by `states` (task id → state) of run `runId`; marks `selected`; a
     * mapped task shows how many instances it has in that run (`counts`, task id → n).
     */
    update(states, runId, selected, counts = {}) {
      for (const ne of nodeEls) {
        const st = ne.isTask ? states[ne.node.id] ?? null : summarize(ne.ids.map((id) => states[id] ?? null));
        ne.el.setAttribute("class", `node ${ne.isTask ? "task-node" : "group-node"} st-${st ?? "none"} ${ne.isTask && selected === ne.node.id ? "selected" : ""}`);
        const mapped = ne.isTask && ne.node.is_mapped ? ` [${counts[ne.node.id] ?? " "}]` : "";
        ne.sub.textContent = `${ne.isTask ? ne.node.operator : `${ne.ids.length} tasks`}${mapped}${st ? ` · ${st.replaceAll("_", " ")}` : ""}`;
        if (ne.isTask) ne.el.setAttribute("href", href(["dags", dagId, "graph"], { run: runId, task: ne.node.id }));
        // The name holds the visible text (name, operator or size, state), as WCAG's "label in name" asks.
        ne.el.setAttribute("aria-label", `${trim(ne.node.label, 22)} ${ne.sub.textContent}`);
      }
      for (const b of boxEls) {
        const st = summarize(b.ids.map((id) => states[id] ?? null));
        b.g.setAttribute("class", `group-box st-${st ?? "none"}`);
      }
    },
  };
}

/** The least scale the graph starts at: below it labels are too small to read. */
export const MIN_READABLE = 0.75;
const ZOOM_MIN = 0.1;
const ZOOM_MAX = 3;

/**
 * Zoom and pan for a drawn graph inside `wrap`: the wheel zooms about the pointer, a
 * drag pans (a click on a node still follows its link), `+`/`-`/`0` and the arrow keys
 * work while the wrap has focus. It starts fitted to the wrap, but never smaller than
 * MIN_READABLE (a wide graph starts at its left end, readable, and pans), and refits
 * when the wrap's size changes until the user zooms or pans. Returns
 * `{zoomBy(f), fit(), reset(), state(), reveal(el), destroy()}`.
 */
export function panZoom(wrap, graph) {
  const { layer, size } = graph;
  let k = 1;
  let x = 0;
  let y = 0;
  let touched = false;
  const apply = () => layer.setAttribute("transform", `translate(${x.toFixed(1)} ${y.toFixed(1)}) scale(${k.toFixed(3)})`);
  const clamp = (v) => Math.min(ZOOM_MAX, Math.max(ZOOM_MIN, v));
  function fit(minimum = MIN_READABLE) {
    const w = wrap.clientWidth || size.w;
    const hgt = wrap.clientHeight || size.h;
    k = clamp(Math.max(Math.min(1, w / size.w, hgt / size.h), Math.min(minimum, 1)));
    // Centred when it fits, else from the left and top.
    x = Math.max(0, (w - size.w * k) / 2);
    y = Math.max(0, (hgt - size.h * k) / 2);
    apply();
  }
  /** Zooms by `f` about (cx, cy) in the wrap's pixels (its centre if not given). */
  function zoomBy(f, cx = wrap.clientWidth / 2, cy = wrap.clientHeight / 2) {
    touched = true;
    const nk = clamp(k * f);
    x = cx - ((cx - x) * nk) / k;
    y = cy - ((cy - y) * nk) / k;
    k = nk;
    apply();
  }
  function panBy(dx, dy) {
    touched = true;
    x += dx;
    y += dy;
    apply();
  }
  const onWheel = (e) => {
    e.preventDefault();
    const r = wrap.getBoundingClientRect();
    zoomBy(Math.exp(-e.deltaY * 0.0015), e.clientX - r.left, e.clientY - r.top);
  };
  let drag = null;
  let dragged = false;
  const onDown = (e) => {
    if (e.button !== 0) return;
    drag = { x: e.clientX, y: e.clientY, id: e.pointerId };
    dragged = false;
  };
  const onMove = (e) => {
    if (!drag || e.pointerId !== drag.id) return;
    const dx = e.clientX - drag.x;
    const dy = e.clientY - drag.y;
    if (!dragged && Math.hypot(dx, dy) < 4) return;
    if (!dragged) wrap.setPointerCapture?.(e.pointerId);
    dragged = true;
    wrap.classList.add("panning");
    drag.x = e.clientX;
    drag.y = e.clientY;
    panBy(dx, dy);
  };
  const onUp = () => {
    drag = null;
    wrap.classList.remove("panning");
  };
  // A drag that ends on a node is a pan, not a click on its link.
  const onClick = (e) => {
    if (dragged) {
      e.preventDefault();
      e.stopPropagation();
      dragged = false;
    }
  };
  const onKey = (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const step = 60;
    const keys = {
      "+": () => zoomBy(1.25), "=": () => zoomBy(1.25), "-": () => zoomBy(0.8), _: () => zoomBy(0.8), 0: () => fit(),
      ArrowLeft: () => panBy(step, 0), ArrowRight: () => panBy(-step, 0), ArrowUp: () => panBy(0, step), ArrowDown: () => panBy(0, -step),
    };
    // Arrows move the graph only when the wrap itself has focus, not a node in it.
    if (e.key.startsWith("Arrow") && e.target !== wrap) return;
    const f = keys[e.key];
    if (!f) return;
    e.preventDefault();
    f();
  };
  /** Pans so `el` (an element of the graph) is in view, if it is not already. */
  function reveal(el) {
    if (!el || !layer.contains(el) || typeof el.getBBox !== "function") return;
    const b = el.getBBox();
    // The node's box in the layer's own units, through the inner group's offset.
    const m = el.getCTM && layer.getCTM ? layer.getCTM().inverse().multiply(el.getCTM()) : null;
    const left = (m ? m.e : 0) + b.x;
    const top = (m ? m.f : 0) + b.y;
    const w = wrap.clientWidth;
    const hgt = wrap.clientHeight;
    const sx = x + left * k;
    const sy = y + top * k;
    if (sx >= 0 && sy >= 0 && sx + b.width * k <= w && sy + b.height * k <= hgt) return;
    touched = true;
    x = w / 2 - (left + b.width / 2) * k;
    y = hgt / 2 - (top + b.height / 2) * k;
    apply();
  }
  // Tabbing to a node out of view brings it in, rather than scrolling the clipped wrap.
  const onFocus = (e) => {
    wrap.scrollLeft = 0;
    wrap.scrollTop = 0;
    if (e.target !== wrap) reveal(e.target.closest(".node, .group-head") ?? e.target);
  };
  const resize = typeof ResizeObserver === "function" ? new ResizeObserver(() => {
    if (!touched) fit();
  }) : null;
  wrap.addEventListener("wheel", onWheel, { passive: false });
  wrap.addEventListener("pointerdown", onDown);
  wrap.addEventListener("pointermove", onMove);
  wrap.addEventListener("pointerup", onUp);
  wrap.addEventListener("pointercancel", onUp);
  wrap.addEventListener("click", onClick, true);
  wrap.addEventListener("keydown", onKey);
  wrap.addEventListener("focusin", onFocus);
  resize?.observe(wrap);
  fit();
  return {
    zoomBy: (f) => zoomBy(f),
    fit: () => {
      touched = false;
      fit();
    },
    /** Full size (scale 1), from the left and top. */
    reset: () => {
      touched = true;
      k = 1;
      x = 0;
      y = 0;
      apply();
    },
    state: () => ({ k, x, y }),
    reveal,
    destroy: () => resize?.disconnect(),
  };
}
