import type { EvalOutput, EvalReport, PresetSummary } from '../report'
import { betterArrow, formatMetric, formatTick, RUN_COUNTS, SUMMARY_METRICS, UNIT_NAMES, type SummaryMetric } from '../summary-metrics'
import { renderBarChart } from './bar-chart'
import { escapeHtml } from './escape-html'
import { REPORT_STYLE } from './report-style'

// Okabe–Ito colours: told apart by readers with any common colour-vision deficiency.
const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#56B4E9', '#D55E00', '#000000']

interface ChartSpec {
  title: string
  metrics: SummaryMetric[]
  /** Category labels when the chart groups several metrics. */
  categories?: string[]
}

const metric = (key: SummaryMetric['key']) => SUMMARY_METRICS.find((entry) => entry.key === key)!
const CHARTS: ChartSpec[] = [
  { title: 'Slop index', metrics: [metric('slopPer1kWords')] },
  { title: 'Repeated 4-grams', metrics: [metric('repeated4gramRate')] },
  { title: 'Distinct-n', metrics: [metric('distinct1'), metric('distinct2'), metric('distinct3')], categories: ['n = 1', 'n = 2', 'n = 3'] },
  { title: 'Repeated sentence openings', metrics: [metric('repeatedOpeningRate')] },
  { title: 'Length accuracy', metrics: [metric('lengthAccuracy')] },
  { title: 'Cut off at max tokens', metrics: [metric('truncatedRate')] },
  { title: 'In the requested language', metrics: [metric('languageAdherence')] },
  { title: 'Grounding', metrics: [metric('grounding')] },
  { title: 'Template-token leaks', metrics: [metric('templateLeakRate')] },
  { title: 'Refusals', metrics: [metric('refusalRate')] },
  { title: 'Time to first token, median', metrics: [metric('ttftMsMedian')] },
  { title: 'Decode speed, median', metrics: [metric('tokensPerSecondMedian')] },
]

export interface HtmlReportOptions {
  /** Picture file name → data: URL, to show each prompt's picture beside its stories. */
  pictures?: Record<string, string>
  /** Prompt id → picture file name. */
  pictureOf?: Record<string, string>
}

/** The report as one self-contained HTML page: inline styles and SVG charts, no script, no network. */
export function renderHtmlReport(report: EvalReport, options: HtmlReportOptions = {}): string {
  const colorOf = new Map(report.summary.map((summary, index) => [summary.preset, PALETTE[index % PALETTE.length]!]))
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pictale eval: ${escapeHtml(report.summary.map((summary) => summary.preset).join(', '))}</title>
<style>${REPORT_STYLE}</style>
</head>
<body>
<header>
<h1>pictale eval</h1>
<p class="meta">${escapeHtml(report.createdAt)} · ${escapeHtml(report.server.baseURL)} · profile <b>${escapeHtml(report.server.profile)}</b> ·
${Object.entries(report.server.models).map(([role, id]) => `${escapeHtml(role)} <code>${escapeHtml(id)}</code>`).join(', ')}</p>
<p class="meta">${report.settings.prompts.length} prompts × ${report.summary.length} presets · seed ${report.settings.seed} ·
concurrency ${report.settings.concurrency}${report.settings.maxTokens ? ` · max tokens ${report.settings.maxTokens}` : ''}</p>
</header>
${renderLegend(report, colorOf)}
<section class="charts">
${CHARTS.map((spec) => renderChartFigure(spec, report.summary, colorOf)).join('\n')}
</section>
<h2>Summary</h2>
${renderSummary(report.summary)}
<h2>Presets</h2>
${renderPresets(report)}
<h2>Stories</h2>
${renderStories(report, options)}
<footer>Each metric is defined, with its source, in docs/eval.md of the pictale repository.</footer>
</body>
</html>
`
}

function renderLegend(report: EvalReport, colorOf: Map<string, string>): string {
  const items = report.summary.map(
    (summary) => `<span class="key"><i style="background:${colorOf.get(summary.preset)}"></i>${escapeHtml(summary.preset)}</span>`,
  )
  return `<p class="legend">${items.join(' ')}</p>`
}

function renderChartFigure(spec: ChartSpec, summary: PresetSummary[], colorOf: Map<string, string>): string {
  const [first] = spec.metrics
  const unit = first!.unit
  const svg = renderBarChart({
    label: spec.title,
    categories: spec.categories ?? [''],
    series: summary.map((entry) => ({
      name: entry.preset,
      color: colorOf.get(entry.preset)!,
      values: spec.metrics.map((m) => entry[m.key]),
    })),
    format: (value) => formatMetric(value, unit),
    formatTick: (value) => formatTick(value, unit),
    ...(unit === 'share' || unit === 'ratio' ? { max: 1 } : {}),
  })
  const better = first!.better === 'none' ? '' : `<span class="better">${betterArrow(first!)} ${first!.better} is better</span>`
  const unitName = UNIT_NAMES[unit] ? ` (${UNIT_NAMES[unit]})` : ''
  return `<figure><figcaption>${escapeHtml(spec.title + unitName)} ${better}</figcaption>${svg}</figure>`
}

function renderSummary(summary: PresetSummary[]): string {
  const head = `<tr><th></th>${summary.map((entry) => `<th>${escapeHtml(entry.preset)}</th>`).join('')}</tr>`
  const rows = [...RUN_COUNTS, ...SUMMARY_METRICS].map(
    (m) =>
      `<tr><th>${betterArrow(m)} ${escapeHtml(m.label)}</th>${summary
        .map((entry) => `<td>${escapeHtml(formatMetric(entry[m.key], m.unit))}</td>`)
        .join('')}</tr>`,
  )
  return `<table class="summary"><thead>${head}</thead><tbody>${rows.join('')}</tbody></table>`
}

function renderPresets(report: EvalReport): string {
  const rows = Object.entries(report.settings.presets).map(
    ([name, sampling]) => `<tr><th>${escapeHtml(name)}</th><td><code>${escapeHtml(compactSampling(sampling))}</code></td></tr>`,
  )
  return `<table class="presets"><tbody>${rows.join('')}</tbody></table>`
}

function compactSampling(sampling: object): string {
  const entries = Object.entries(sampling).map(([field, value]) =>
    Array.isArray(value) && value.length > 6 ? [field, `[${value.length} phrases]`] : [field, value],
  )
  return entries.length ? JSON.stringify(Object.fromEntries(entries)) : 'the server’s defaults'
}

function renderStories(report: EvalReport, options: HtmlReportOptions): string {
  const byPrompt = new Map<string, EvalOutput[]>()
  for (const output of report.outputs) byPrompt.set(output.promptId, [...(byPrompt.get(output.promptId) ?? []), output])
  return [...byPrompt]
    .map(([promptId, outputs]) => {
      const first = outputs[0]!
      const picture = options.pictures?.[options.pictureOf?.[promptId] ?? '']
      const description = outputs.find((output) => output.result)?.result?.description.text
      return `<section class="prompt">
<h3>${escapeHtml(promptId)}</h3>
<p class="meta">${escapeHtml(first.genre)} · ${escapeHtml(first.language)} · ${first.targetWords} words requested</p>
<div class="scene">${picture ? `<img src="${escapeHtml(picture)}" alt="the prompt's picture" width="240" height="180">` : ''}
${description === undefined ? '' : `<div><h4>Description</h4><p class="text">${escapeHtml(description)}</p></div>`}</div>
${outputs.map(renderOutput).join('\n')}
</section>`
    })
    .join('\n')
}

function renderOutput(output: EvalOutput): string {
  if (!output.result || !output.metrics) {
    return `<details><summary><b>${escapeHtml(output.preset)}</b>: ${escapeHtml(output.status)} (${escapeHtml(output.error?.code ?? '')})</summary>
<p class="text">${escapeHtml(output.error?.message ?? '')}</p></details>`
  }
  const { metrics, result } = output
  const facts = [
    `${metrics.length.words} words`,
    `slop ${metrics.slop.hits}`,
    `language ${metrics.language.detected}`,
    metrics.grounding.score === null ? 'grounding –' : `grounding ${metrics.grounding.used.length}/${metrics.grounding.nouns.length}`,
    metrics.templateLeaks.count ? `${metrics.templateLeaks.count} template tokens` : '',
    metrics.refusal ? 'refusal' : '',
    `finish ${result.story.finishReason}`,
  ].filter(Boolean)
  return `<details><summary><b>${escapeHtml(output.preset)}</b>: ${escapeHtml(facts.join(' · '))}</summary>
<p class="text">${escapeHtml(result.story.text)}</p></details>`
}
