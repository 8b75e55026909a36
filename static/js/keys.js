// Keyboard shortcuts for every page: `/` focuses the page's search box, `?` lists the
// shortcuts, and the arrow keys walk the cells of any `table.grid` (run bars, task
// names, task instances), where Enter opens the focused one as a click would. Keys
// typed into a field, or pressed with Ctrl, Alt or Meta, are never taken.

import { h } from "./ui.js";

/**
 * What the `?` dialog lists: `[keys, what]`. A page that adds a shortcut of its own
 * adds its line here.
 */
export const SHORTCUTS = [
  [["/"], "Focus the search box"],
  [["?"], "Show these shortcuts"],
  [["←", "↑", "→", "↓"], "Move between runs and tasks in the grid"],
  [["Enter"], "Open the run or task instance in focus"],
  [["Esc"], "Close a dialog"],
];

const ARROWS = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0] };
const FOCUSABLE = "a[href], button:not(:disabled)";

/** Whether a key event is typing into something that takes text. */
function typing(e) {
  const t = e.target;
  if (!(t instanceof Element)) return false;
  if (t.isContentEditable) return true;
  if (t instanceof HTMLTextAreaElement || t instanceof HTMLSelectElement) return true;
  if (t instanceof HTMLInputElement) return !["checkbox", "radio", "button", "submit", "reset", "range", "color", "file"].includes(t.type);
  return false;
}

/** The first search box on screen, in the open dialog if there is one, else in the page. */
function searchBox() {
  const scope = document.querySelector("dialog[open]") ?? document.getElementById("main") ?? document;
  return [...scope.querySelectorAll("input[type=search]")].find((x) => !x.disabled && x.getClientRects().length) ?? null;
}

/** The focusable thing in a table cell, if any. */
const inCell = (cell) => cell?.querySelector(FOCUSABLE) ?? null;

/**
 * The next focusable cell from `cell` going `[dr, dc]` in its table: along the row for
 * left and right, down the column for up and down, skipping cells with nothing to focus
 * (a group's summary square is not a link). Null at the edge.
 */
export function step(cell, [dr, dc]) {
  const table = cell.closest("table");
  const rows = [...table.rows];
  let r = rows.indexOf(cell.parentElement);
  let c = cell.cellIndex;
  for (;;) {
    r += dr;
    c += dc;
    const row = rows[r];
    if (!row || c < 0 || c >= row.cells.length) return null;
    const target = inCell(row.cells[c]);
    if (target) return target;
  }
}

/** The cell to start from when the grid has no focus yet: the selected one, else the newest run's bar. */
function startCell(grid) {
  const current = grid.querySelector("[aria-current=true]") ?? grid.querySelector("thead th:last-child a[href]") ?? grid.querySelector(FOCUSABLE);
  return current;
}

let dialog = null;

/** Opens the list of shortcuts in a modal dialog; Esc or Close shuts it. */
export function showShortcuts() {
  if (dialog?.open) return;
  const close = h("button", { type: "button", class: "btn", onclick: () => dialog.close() }, "Close");
  dialog = h("dialog", { id: "shortcuts", "aria-labelledby": "shortcuts-title" },
    h("div", { class: "dialog-form" },
      h("header", {}, h("h2", { id: "shortcuts-title" }, "Keyboard shortcuts")),
      h("div", { class: "dialog-body" },
        h("dl", { class: "shortcut-list" }, SHORTCUTS.map(([keys, what]) => h("div", {},
          h("dt", {}, keys.map((k) => h("kbd", {}, k))),
          h("dd", {}, what))))),
      h("footer", {}, close)));
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  close.focus();
}

function onKey(e) {
  if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey || e.isComposing || typing(e)) return;
  const modalOpen = Boolean(document.querySelector("dialog[open]"));
  if (e.key === "/" && !modalOpen) {
    const box = searchBox();
    if (!box) return;
    e.preventDefault();
    box.focus();
    box.select();
    return;
  }
  if (e.key === "?" && !modalOpen) {
    e.preventDefault();
    showShortcuts();
    return;
  }
  const dir = ARROWS[e.key];
  if (!dir || e.shiftKey || modalOpen) return;
  const active = document.activeElement;
  const cell = active?.closest?.("table.grid th, table.grid td");
  let target = null;
  if (cell) target = step(cell, dir);
  else if (active === document.body || active === document.getElementById("main")) {
    // Nothing in focus on a page with a grid: the arrows enter it at the selection.
    const grid = document.querySelector("#main table.grid");
    if (grid) target = startCell(grid);
  } else return;
  if (!cell && !target) return;
  // At the grid's edge the key is still the grid's: the page must not scroll instead.
  e.preventDefault();
  if (target) {
    target.focus();
    target.scrollIntoView({ block: "nearest", inline: "nearest" });
  }
}

/** Listens for the shortcuts on the whole document. */
export function initKeys() {
  document.addEventListener("keydown", onKey);
}
