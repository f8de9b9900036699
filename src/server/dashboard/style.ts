// The dashboard's stylesheet, served as /_dashboard/style.css. A string module rather than a
// .css file so that the plain `tsc` build carries it into dist/ like the code. Light and dark
// follow the system; everything fits a phone (tables scroll inside their box).
export const STYLE = `
:root { color-scheme: light dark; --fg: #1b1f24; --muted: #57606a; --bg: #ffffff; --panel: #f6f8fa; --line: #d0d7de;
  --s1: #0969da; --s2: #bf3989; --warn: #9a6700; --focus: #fd8c73; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6edf3; --muted: #9da7b3; --bg: #0d1117; --panel: #161b22; --line: #30363d;
  --s1: #58a6ff; --s2: #f778ba; --warn: #d29922; } }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
a { color: var(--s1); }
:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
.skip { position: absolute; left: -999px; }
.skip:focus { left: 1rem; top: 1rem; background: var(--bg); padding: .5rem; z-index: 1; }
header { display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; align-items: center; padding: .75rem 1rem; border-bottom: 1px solid var(--line); background: var(--panel); }
.brand { margin: 0; font-weight: 700; }
.brand a { color: inherit; text-decoration: none; }
nav ul { display: flex; gap: 1rem; list-style: none; margin: 0; padding: 0; }
nav a[aria-current="page"] { font-weight: 700; text-decoration: none; color: var(--fg); }
#token-form { display: flex; flex-wrap: wrap; gap: .4rem; align-items: center; margin-left: auto; }
#token-form[hidden], button[hidden] { display: none; }
#token-form input { min-width: 12rem; max-width: 100%; padding: .35rem .5rem; font: inherit; border: 1px solid var(--line); border-radius: 6px; background: var(--bg); color: var(--fg); }
button { font: inherit; padding: .35rem .75rem; border-radius: 6px; border: 1px solid var(--line); background: var(--bg); color: var(--fg); cursor: pointer; }
.help { color: var(--muted); font-size: .875rem; margin: .25rem 0; }
#token-form .help { flex-basis: 100%; text-align: right; margin: 0; }
main { max-width: 72rem; margin: 0 auto; padding: 1rem; }
main:focus { outline: none; }
h1 { font-size: 1.6rem; margin: .5rem 0 1rem; }
h2 { font-size: 1.2rem; margin: 1.75rem 0 .75rem; }
.name { font-family: ui-monospace, monospace; }
.badge { font-size: .8rem; vertical-align: middle; border: 1px solid var(--line); border-radius: 1rem; padding: .1rem .6rem; color: var(--muted); }
.viewer { margin: 0 0 .5rem; color: var(--muted); }
.warn { color: var(--warn); }
.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(12rem, 1fr)); gap: .75rem; margin: 0; }
.figure { background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: .6rem .8rem; }
.figure dt { color: var(--muted); font-size: .875rem; }
.figure dd { margin: 0; font-size: 1.25rem; font-weight: 600; }
.figure dd.help { font-size: .8rem; font-weight: 400; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
caption { text-align: left; color: var(--muted); padding-bottom: .4rem; }
th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
thead th { font-weight: 600; color: var(--muted); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.path { font-family: ui-monospace, monospace; font-size: .8rem; word-break: break-all; }
meter { width: 5rem; vertical-align: middle; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(min(100%, 26rem), 1fr)); gap: 1rem; }
figure.chart { margin: 0; background: var(--panel); border: 1px solid var(--line); border-radius: 8px; padding: .6rem .8rem; }
figure.chart svg { width: 100%; height: auto; display: block; }
figcaption { display: flex; flex-wrap: wrap; gap: .25rem 1rem; align-items: center; margin-bottom: .4rem; }
.legend { color: var(--muted); font-size: .85rem; }
.swatch { display: inline-block; width: .8rem; height: .8rem; border-radius: 2px; margin-right: .3rem; vertical-align: -1px; }
.swatch.s1, .bar.s1 { background: var(--s1); fill: var(--s1); }
.swatch.s2, .bar.s2 { background: var(--s2); fill: var(--s2); }
.line { fill: none; stroke-width: 2.5; }
.line.s1, .dot.s1 { stroke: var(--s1); fill-opacity: 0; }
.line.s2, .dot.s2 { stroke: var(--s2); fill-opacity: 0; }
.dot { stroke-width: 2.5; }
.grid { stroke: var(--line); stroke-width: 1; }
.tick { fill: var(--muted); font-size: 11px; }
details { margin-top: .4rem; font-size: .85rem; }
.empty { color: var(--muted); }
@media (max-width: 40rem) { header { padding: .5rem; } #token-form { margin-left: 0; width: 100%; } #token-form input { flex: 1; min-width: 0; } #token-form .help { text-align: left; } main { padding: .75rem; } }
`;
