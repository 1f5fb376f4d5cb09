"""The report page's style sheet and its one script, inlined into every report.

The page loads nothing: its Content-Security-Policy allows this style sheet and this script
by their SHA-256 alone (``default-src 'none'``), so a browser refuses any other resource or
script, including one a display name could smuggle in had it escaped escaping.
"""

from __future__ import annotations

import base64
import hashlib

CSS = """
:root {
  --ink: #1d232b; --muted: #5b6570; --line: #d9dee3; --soft: #f4f6f8; --paper: #fff;
  --done: #2e7d32; --quar: #e08a00; --fail: #c62828; --todo: #8d969e; --gone: #b0b7be;
  --bound: #1f5fbf; --accent: #6a3cc0; --setup: #4db6ac;
}
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body {
  margin: 0; background: var(--soft); color: var(--ink);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
    sans-serif;
}
main { max-width: 1320px; margin: 0 auto; padding: 24px 20px 48px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 0 0 10px; }
h3 { font-size: 14px; margin: 14px 0 6px; color: var(--muted); font-weight: 600; }
p { margin: 6px 0; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 12px; }
.meta { color: var(--muted); margin: 0 0 18px; }
.meta span { margin-right: 14px; white-space: nowrap; }
section { background: var(--paper); border: 1px solid var(--line); border-radius: 8px;
  padding: 16px 18px; margin: 0 0 16px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(128px, 1fr));
  gap: 10px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px;
  border-top: 4px solid var(--line); }
.card .n { font-size: 24px; font-weight: 650; font-variant-numeric: tabular-nums; }
.card .l { color: var(--muted); font-size: 12px; }
.card.done { border-top-color: var(--done); } .card.quar { border-top-color: var(--quar); }
.card.fail { border-top-color: var(--fail); } .card.todo { border-top-color: var(--todo); }
.card.gone { border-top-color: var(--gone); }
.note { color: var(--muted); font-size: 12px; }
svg.chart { width: 100%; height: auto; display: block; }
svg.chart text { font-family: inherit; fill: var(--ink); }
.grid { stroke: var(--line); stroke-width: 1; } .grid.minor { stroke-dasharray: 2 3; }
.axis { stroke: var(--muted); }
.tick, .legend, .stat { font-size: 11px; } .tick { fill: var(--muted) !important; }
.axis-label { font-size: 11px; fill: var(--muted) !important; }
.line { fill: none; stroke-width: 2.2; stroke-linejoin: round; }
.c-done-s { stroke: var(--done); } .c-fail-s { stroke: var(--fail); }
.c-setup-s { stroke: var(--setup); }
.bound { stroke: var(--bound); stroke-dasharray: 6 4; stroke-width: 1.6; }
.bound-area { fill: var(--bound); opacity: 0.07; }
.c-done { fill: var(--done); } .c-quar { fill: var(--quar); } .c-fail { fill: var(--fail); }
.c-todo { fill: var(--todo); } .c-gone { fill: var(--gone); }
.box { fill: #dfe7f3; stroke: #6b7f99; stroke-width: 1; }
.box.slow { fill: #e7dcf7; stroke: var(--accent); stroke-width: 1.6; }
.step-label { font-size: 12px; }
.step-label.slow { font-weight: 700; fill: var(--accent) !important; }
.whisker { stroke: #8a97a8; stroke-width: 1; }
.median { stroke: var(--ink); stroke-width: 2; }
.dot { fill: var(--done); opacity: 0.45; }
.err { stroke: var(--fail); stroke-width: 1.6; }
table { border-collapse: collapse; width: 100%; font-size: 12.5px; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { background: var(--soft); font-weight: 600; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #fafbfc; }
.scroll { overflow-x: auto; }
td .sub { display: block; color: var(--muted); font-size: 11.5px; }
td.msg { min-width: 190px; overflow-wrap: anywhere; }
td.where { white-space: nowrap; } td.inst { min-width: 110px; }
td.live { min-width: 90px; max-width: 150px; }
td.id { overflow-wrap: anywhere; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas,
  monospace; font-size: 11px; min-width: 80px; max-width: 170px; }
td.tpl { min-width: 80px; max-width: 120px; }
.attention-table { font-size: 12px; }
.attention-table th, .attention-table td { padding: 5px 6px; }
.pill { display: inline-block; padding: 0 6px; border-radius: 9px; font-size: 11px;
  font-weight: 600; color: #fff; background: var(--todo); white-space: nowrap; }
.pill.failed { background: var(--fail); } .pill.quarantined { background: var(--quar); }
.pill.drifted { background: var(--accent); } .pill.job { background: var(--bound); }
th button { all: unset; cursor: pointer; }
th button::after { content: " \\2195"; color: var(--todo); font-size: 10px; }
th[aria-sort="ascending"] button::after { content: " \\25B2"; color: var(--ink); }
th[aria-sort="descending"] button::after { content: " \\25BC"; color: var(--ink); }
th button:focus-visible { outline: 2px solid var(--bound); outline-offset: 2px; }
.controls { display: flex; flex-wrap: wrap; gap: 8px 16px; align-items: center;
  margin: 0 0 10px; }
.controls input[type="search"] { padding: 5px 8px; border: 1px solid var(--line);
  border-radius: 5px; min-width: 260px; font: inherit; }
.controls label { white-space: nowrap; }
.empty { color: var(--muted); font-style: italic; }
tr[hidden] { display: none; }
.two { display: grid; grid-template-columns: 1fr; gap: 12px; }
@media (min-width: 980px) { .two.cols { grid-template-columns: 1fr 1fr; } }
@media print {
  @page { size: A4 landscape; margin: 10mm; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  body { background: #fff; font-size: 10pt; }
  main { max-width: none; padding: 0; }
  section { border: none; border-top: 1px solid var(--line); border-radius: 0;
    padding: 8px 0; break-inside: avoid-page; }
  section.attention { break-inside: auto; }
  .controls { display: none; }
  .printed-filter { display: block !important; }
  thead { display: table-header-group; }
  .attention-table { table-layout: fixed; font-size: 7.5pt; }
  .attention-table td, .attention-table th { overflow-wrap: anywhere; white-space: normal;
    min-width: 0; max-width: none; padding: 3px 4px; }
  .attention-table .pill { white-space: normal; }
  .attention-table th[data-col="reason"] { width: 24%; }
  .attention-table th[data-col="code"], .attention-table th[data-col="live"] { width: 11%; }
  .attention-table th[data-col="instance"], .attention-table th[data-col="request"] {
    width: 10%; }
  tr { break-inside: avoid; }
  .scroll { overflow: visible; }
  th button::after { content: ""; }
}
.printed-filter { display: none; }
"""

JS = """
(function () {
  "use strict";
  var root = document.documentElement;
  function cellValue(row, i) {
    var c = row.cells[i];
    return c.hasAttribute("data-v") ? c.getAttribute("data-v") : c.textContent.trim();
  }
  function setup(table) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var heads = table.tHead.rows[0].cells;
    var input = document.getElementById("filter-text");
    var tenant = document.getElementById("filter-tenant");
    var boxes = Array.prototype.slice.call(document.querySelectorAll("input[data-kind]"));
    var count = document.getElementById("filter-count");
    var printed = document.getElementById("printed-filter");
    function sortBy(i, desc) {
      var num = heads[i].getAttribute("data-type") === "num";
      var order = rows.map(function (r, n) { return [r, n]; });
      order.sort(function (a, b) {
        var x = cellValue(a[0], i), y = cellValue(b[0], i), r;
        if (num) { r = (parseFloat(x) || 0) - (parseFloat(y) || 0); }
        else { r = x.localeCompare(y, undefined, {numeric: true, sensitivity: "base"}); }
        return (desc ? -r : r) || a[1] - b[1];
      });
      rows = order.map(function (p) { return p[0]; });
      rows.forEach(function (r) { body.appendChild(r); });
      for (var j = 0; j < heads.length; j++) {
        heads[j].setAttribute("aria-sort", j === i ? (desc ? "descending" : "ascending") : "none");
      }
      table.setAttribute("data-sorted", heads[i].getAttribute("data-col") + (desc ? ":desc" : ""));
    }
    function filter() {
      var q = input.value.trim().toLowerCase();
      var on = {};
      boxes.forEach(function (b) { on[b.getAttribute("data-kind")] = b.checked; });
      var one = tenant ? tenant.value : "";
      var shown = 0;
      rows.forEach(function (r) {
        var ok = on[r.getAttribute("data-kind")] !== false &&
          (!one || r.getAttribute("data-tenant") === one) &&
          (!q || r.textContent.toLowerCase().indexOf(q) >= 0);
        r.hidden = !ok;
        if (ok) { shown++; }
      });
      count.textContent = shown + " of " + rows.length + " shown";
      printed.textContent = shown === rows.length ? "" : "Filtered: " + shown + " of " +
        rows.length + " rows shown" + (one ? ", tenant " + one : "") +
        (q ? " (\\u201c" + q + "\\u201d)" : "");
      table.setAttribute("data-shown", String(shown));
    }
    Array.prototype.forEach.call(heads, function (th, i) {
      var button = th.querySelector("button");
      if (!button) { return; }
      button.addEventListener("click", function () {
        sortBy(i, th.getAttribute("aria-sort") === "ascending");
      });
    });
    input.addEventListener("input", filter);
    if (tenant) { tenant.addEventListener("change", filter); }
    boxes.forEach(function (b) { b.addEventListener("change", filter); });
    var params = {};
    location.hash.replace(/^#/, "").split("&").forEach(function (part) {
      var kv = part.split("=");
      if (kv[0]) { params[decodeURIComponent(kv[0])] = decodeURIComponent(kv[1] || ""); }
    });
    if (params.q) { input.value = params.q; }
    if (params.tenant && tenant) { tenant.value = params.tenant; }
    if (params.kind) {
      var kinds = params.kind.split(",");
      boxes.forEach(function (b) { b.checked = kinds.indexOf(b.getAttribute("data-kind")) >= 0; });
    }
    if (params.sort) {
      var spec = params.sort.split(":");
      for (var i = 0; i < heads.length; i++) {
        if (heads[i].getAttribute("data-col") === spec[0]) { sortBy(i, spec[1] === "desc"); }
      }
    }
    filter();
  }
  try {
    var table = document.getElementById("attention");
    if (table) { setup(table); }
    root.setAttribute("data-script", "ok");
  } catch (e) {
    root.setAttribute("data-script", "error: " + e);
  }
})();
"""


def csp_hash(text: str) -> str:
    """``'sha256-...'`` of an inline style sheet or script, for the Content-Security-Policy."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def content_security_policy() -> str:
    """Nothing but this page's own style sheet and script; images only as ``data:``."""
    return (
        f"default-src 'none'; style-src {csp_hash(CSS)}; script-src {csp_hash(JS)}; "
        "img-src data:; base-uri 'none'; form-action 'none'"
    )
