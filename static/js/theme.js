// The colour theme: light, dark, or following the OS, chosen in the top bar and kept in
// this browser. The choice lives on `<html data-theme>` as the theme in force (`light`
// or `dark`), so every style sheet rule for dark mode is one `:root[data-theme=dark]`
// selector; a media query alone could not be overruled by the user's choice. index.html
// sets the attribute before the first paint; this module keeps it in step with the OS.

import { h } from "./ui.js";

const KEY = "updraft.theme";
/** The choices, as the picker lists them: `[value, label]`; `os` is the default. */
export const THEMES = [["os", "Auto"], ["light", "Light"], ["dark", "Dark"]];
const osDark = window.matchMedia("(prefers-color-scheme: dark)");

/** The user's choice: `os`, `light` or `dark`. */
export function themeChoice() {
  let v = null;
  try {
    v = localStorage.getItem(KEY);
  } catch {
    // Storage may be denied (a locked-down browser): the OS decides.
  }
  return v === "light" || v === "dark" ? v : "os";
}

/** The theme in force for a choice. */
export function resolved(choice = themeChoice()) {
  if (choice === "light" || choice === "dark") return choice;
  return osDark.matches ? "dark" : "light";
}

/** Keeps `choice` (`os` forgets it) and applies it. */
export function setTheme(choice) {
  try {
    if (choice === "light" || choice === "dark") localStorage.setItem(KEY, choice);
    else localStorage.removeItem(KEY);
  } catch {
    // Not kept, but applied to this page.
  }
  apply();
}

function apply() {
  document.documentElement.dataset.theme = resolved();
  const picker = document.getElementById("theme");
  if (picker && picker.value !== themeChoice()) picker.value = themeChoice();
}

/** Puts the picker into the top bar and follows the OS while the choice is `os`. */
export function initTheme() {
  apply();
  osDark.addEventListener("change", apply);
  // Another tab's choice applies here too.
  window.addEventListener("storage", (e) => {
    if (e.key === KEY || e.key === null) apply();
  });
  const top = document.querySelector("header.top");
  if (!top || document.getElementById("theme")) return;
  const picker = h("select", { id: "theme", class: "theme-pick", "aria-label": "Colour theme", title: "Colour theme: light, dark or as the OS" },
    ...THEMES.map(([value, label]) => h("option", { value, selected: value === themeChoice() }, label)));
  picker.addEventListener("change", () => setTheme(picker.value));
  top.append(picker);
}
