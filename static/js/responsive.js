// What lets every page work on a 390-px phone without sideways scrolling, for pages
// written before and after it: each data table's cells are labelled with their column's
// heading (`data-label`), so on a narrow screen app.css can stack a row as "label:
// value" lines; and the main navigation folds behind a Menu button. Tables are labelled
// as they appear or change, so a page needs no code for it; `table.grid` (a matrix that
// scrolls inside its own box) and tables marked `data-no-stack` are left alone.

import { h } from "./ui.js";

/** Labels `table`'s body cells with the text of their column's heading. */
export function labelCells(table) {
  if (table.classList.contains("grid") || table.dataset.noStack !== undefined) return;
  const head = table.tHead?.rows[0];
  if (!head) return;
  const labels = [];
  for (const th of head.cells) {
    const text = th.textContent.trim();
    for (let i = 0; i < th.colSpan; i++) labels.push(text);
  }
  for (const body of table.tBodies) {
    for (const row of body.rows) {
      let col = 0;
      for (const cell of row.cells) {
        // A cell across columns (an empty list's message) has no one heading.
        const label = cell.colSpan === 1 ? labels[col] : "";
        if (label) {
          if (cell.dataset.label !== label) cell.dataset.label = label;
        } else if (cell.dataset.label !== undefined) delete cell.dataset.label;
        col += cell.colSpan;
      }
    }
  }
}

function labelAll() {
  for (const t of document.querySelectorAll("table")) labelCells(t);
}

/** The Menu button that shows and hides the main navigation on narrow screens. */
function navToggle() {
  const top = document.querySelector("header.top");
  const nav = top?.querySelector("nav.main-nav");
  if (!nav || top.querySelector(".nav-toggle")) return;
  nav.id ||= "main-nav";
  const btn = h("button", {
    type: "button", class: "nav-toggle icon-btn", "aria-controls": nav.id, "aria-expanded": "false", "aria-label": "Menu", title: "Menu",
  }, h("span", { "aria-hidden": "true" }, "☰"));
  const set = (open) => {
    top.classList.toggle("nav-open", open);
    btn.setAttribute("aria-expanded", String(open));
  };
  btn.addEventListener("click", () => set(!top.classList.contains("nav-open")));
  // Following a link closes the menu, as does Escape.
  nav.addEventListener("click", (e) => {
    if (e.target.closest("a")) set(false);
  });
  top.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && top.classList.contains("nav-open")) {
      set(false);
      btn.focus();
    }
  });
  top.append(btn);
}

/** Labels every table now and whenever the page changes; adds the Menu button. */
export function initResponsive() {
  navToggle();
  labelAll();
  // Labelling sets attributes only, which this observer does not watch: no loop.
  new MutationObserver(labelAll).observe(document.body, { childList: true, subtree: true });
}
