/** The HTML report's stylesheet, inlined into the page. */
export const REPORT_STYLE = `
body { font: 15px/1.45 system-ui, sans-serif; color: #222; margin: 2rem auto; max-width: 1180px; padding: 0 1rem; }
h1 { margin: 0 0 .3rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
.meta { color: #555; margin: .2rem 0; }
code { font-size: 90%; background: #f3f3f3; padding: 0 .25em; border-radius: 3px; }
.legend { margin: 1.2rem 0 .4rem; }
.key { display: inline-flex; align-items: center; margin-right: 1.2rem; font-weight: 600; }
.key i { width: 14px; height: 14px; border-radius: 3px; margin-right: .4rem; display: inline-block; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(370px, 1fr)); gap: .8rem; }
figure { margin: 0; padding: .5rem; border: 1px solid #e4e4e4; border-radius: 6px; background: #fff; }
figcaption { font-weight: 600; margin-bottom: .2rem; }
.better { font-weight: normal; color: #777; font-size: 85%; margin-left: .4rem; }
.chart .grid { stroke: #e8e8e8; stroke-width: 1; }
.chart text { font: 11px system-ui, sans-serif; fill: #444; }
.chart .value { font-size: 10px; fill: #222; }
.chart .category { font-size: 12px; }
table { border-collapse: collapse; }
td, th { padding: .25rem .7rem; border-bottom: 1px solid #eee; text-align: right; }
tbody th { text-align: left; font-weight: normal; }
.presets td { text-align: left; }
.prompt { border-top: 1px solid #ddd; padding-top: .6rem; }
.scene { display: flex; gap: 1rem; align-items: flex-start; }
.scene img { border: 1px solid #ddd; border-radius: 4px; }
.text { white-space: pre-wrap; max-width: 80ch; }
details { margin: .3rem 0; } summary { cursor: pointer; }
footer { margin: 3rem 0 1rem; color: #777; }
`
