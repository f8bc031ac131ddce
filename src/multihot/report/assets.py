"""The report page's stylesheet and script, inlined into every report (nothing is fetched).

The script does two things: sorts a ``table.sortable`` by the column whose header is clicked
(numbers by the cells' ``data-value``, undefined values last), and marks the page ready
(``body[data-state=ready]``) once it has run.
"""

CSS = """
:root { --ink: #1d2430; --muted: #5b6575; --line: #d9dee6; --panel: #f6f8fa; --accent: #2f6fd6; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
       color: var(--ink); background: #fff; }
header { padding: 1.2rem 2rem .6rem; border-bottom: 1px solid var(--line); }
header h1 { margin: 0 0 .2rem; font-size: 1.5rem; word-break: break-word; }
header p { margin: 0; color: var(--muted); }
nav { margin-top: .6rem; display: flex; flex-wrap: wrap; gap: .3rem .9rem; }
nav a { color: var(--accent); text-decoration: none; }
main { padding: 0 2rem 3rem; max-width: 1500px; }
section { margin-top: 2rem; }
h2 { font-size: 1.2rem; border-bottom: 1px solid var(--line); padding-bottom: .3rem; }
h3 { font-size: 1rem; margin: 1.2rem 0 .4rem; }
.note { color: var(--muted); margin: .2rem 0 .6rem; }
.cards { display: flex; flex-wrap: wrap; gap: .6rem; }
.card { background: var(--panel); border: 1px solid var(--line); border-radius: 6px;
        padding: .5rem .8rem; min-width: 8.5rem; }
.card .name { display: block; color: var(--muted); font-size: .8rem; }
.card .value { font-size: 1.3rem; font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: .25rem .6rem; border-bottom: 1px solid var(--line); text-align: right; }
th:first-child, td:first-child { text-align: left; }
table.config { margin: 0 1.5rem 1rem 0; display: inline-table; vertical-align: top; }
table.config caption { text-align: left; font-weight: 600; padding: .2rem 0; }
table.config th { font-weight: normal; color: var(--muted); text-align: left; }
table.config td { text-align: left; word-break: break-word; max-width: 28rem; }
.scroll { max-height: 36rem; overflow: auto; border: 1px solid var(--line); border-radius: 6px;
          display: inline-block; max-width: 100%; }
table.sortable thead th { position: sticky; top: 0; background: var(--panel); cursor: pointer;
                          user-select: none; white-space: nowrap; }
table.sortable thead th:hover { color: var(--accent); }
table.sortable th[aria-sort=ascending]::after { content: " \\25B2"; font-size: .7em; }
table.sortable th[aria-sort=descending]::after { content: " \\25BC"; font-size: .7em; }
table.sortable td:first-child { word-break: break-word; max-width: 22rem; }
figure.plot { margin: .4rem 0 1rem; }
figure.plot svg, figure.plot img { max-width: 100%; height: auto; display: block; }
figure.plot.heatmap { overflow-x: auto; }
figure.plot.heatmap img { max-width: none; }
figure.plot figcaption { color: var(--muted); font-size: .85rem; }
details.mistakes { border: 1px solid var(--line); border-radius: 6px; margin: .4rem 0;
                   padding: .3rem .7rem; }
details.mistakes summary { cursor: pointer; font-weight: 600; word-break: break-word; }
.columns { display: grid; grid-template-columns: repeat(auto-fit, minmax(24rem, 1fr));
           gap: 0 1.5rem; }
ol.examples { padding-left: 1.4rem; margin: .2rem 0 .6rem; }
ol.examples li { margin: .25rem 0; }
.prob { font-variant-numeric: tabular-nums; font-weight: 600; margin-right: .4rem; }
.text { white-space: pre-wrap; word-break: break-word; }
.also { display: block; color: var(--muted); font-size: .8rem; }
.empty { color: var(--muted); font-style: italic; }
"""

JS = """
"use strict";
(() => {
  // The cell's sort key: data-value when it has one ("" = undefined), else its text.
  const key = (row, column, numeric) => {
    const cell = row.cells[column];
    const raw = cell.dataset.value !== undefined ? cell.dataset.value : cell.textContent;
    if (!numeric) return raw.toLowerCase();
    return raw === "" ? NaN : Number(raw);
  };
  for (const table of document.querySelectorAll("table.sortable")) {
    const headers = [...table.tHead.rows[0].cells];
    headers.forEach((header, column) => {
      const sort = () => {
        const descending = header.getAttribute("aria-sort") === "ascending";
        const numeric = header.dataset.type === "number";
        const body = table.tBodies[0];
        const rows = [...body.rows];
        rows.sort((a, b) => {
          const x = key(a, column, numeric), y = key(b, column, numeric);
          if (numeric) {
            const missing = Number.isNaN(x) - Number.isNaN(y);
            if (missing || Number.isNaN(x)) return missing;  // undefined values go last
            return descending ? y - x : x - y;
          }
          return descending ? y.localeCompare(x) : x.localeCompare(y);
        });
        headers.forEach((h) => h.setAttribute("aria-sort", "none"));
        header.setAttribute("aria-sort", descending ? "descending" : "ascending");
        body.append(...rows);
      };
      header.addEventListener("click", sort);
      header.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          sort();
        }
      });
    });
  }
  document.body.dataset.state = "ready";
})();
"""
