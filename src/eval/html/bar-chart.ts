import { escapeHtml } from './escape-html'

export interface BarSeries {
  name: string
  color: string
  /** One value per category; null draws no bar. */
  values: (number | null)[]
}

export interface BarChart {
  /** What the chart shows, for screen readers. */
  label: string
  /** Groups along the x axis; a single unnamed group for one metric. */
  categories: string[]
  series: BarSeries[]
  /** A bar's value label. */
  format(value: number): string
  /** A y-axis tick's label (short: the unit belongs in the chart's title). */
  formatTick(value: number): string
  /** The top of the y axis; default: a round number above the largest value. */
  max?: number
}

const WIDTH = 360
const HEIGHT = 220
const MARGIN = { top: 18, right: 10, bottom: 28, left: 46 }
const TICKS = 4
// Narrower bars keep their values in the tooltip and the summary table: labels would overlap.
const MIN_LABELLED_BAR_WIDTH = 30

/** A grouped bar chart as an inline SVG element (no script, no external resource). */
export function renderBarChart(chart: BarChart): string {
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom
  const largest = Math.max(0, ...chart.series.flatMap((series) => series.values.filter((value): value is number => value !== null)))
  const max = chart.max ?? roundUp(largest)
  const y = (value: number) => MARGIN.top + plotHeight - (Math.min(value, max) / max) * plotHeight
  const groupWidth = plotWidth / chart.categories.length
  const barWidth = (groupWidth * 0.8) / chart.series.length
  const parts: string[] = []
  for (let tick = 0; tick <= TICKS; tick++) {
    const value = (max * tick) / TICKS
    parts.push(
      `<line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${y(value)}" y2="${y(value)}" class="grid"/>`,
      `<text x="${MARGIN.left - 6}" y="${y(value) + 4}" class="tick" text-anchor="end">${escapeHtml(chart.formatTick(value))}</text>`,
    )
  }
  chart.categories.forEach((category, group) => {
    const groupLeft = MARGIN.left + group * groupWidth + groupWidth * 0.1
    chart.series.forEach((series, index) => {
      const value = series.values[group] ?? null
      const x = groupLeft + index * barWidth
      const center = x + barWidth / 2
      if (value === null) {
        parts.push(`<text x="${center}" y="${y(0) - 4}" class="value" text-anchor="middle">–</text>`)
        return
      }
      const top = y(value)
      parts.push(
        `<rect x="${x + 1}" y="${top}" width="${Math.max(barWidth - 2, 1)}" height="${Math.max(y(0) - top, 1)}" fill="${series.color}">` +
          `<title>${escapeHtml(`${series.name}: ${chart.format(value)}`)}</title></rect>`,
      )
      if (barWidth >= MIN_LABELLED_BAR_WIDTH) {
        parts.push(`<text x="${center}" y="${top - 4}" class="value" text-anchor="middle">${escapeHtml(chart.format(value))}</text>`)
      }
    })
    if (category) {
      parts.push(
        `<text x="${groupLeft + groupWidth * 0.4}" y="${HEIGHT - 8}" class="category" text-anchor="middle">${escapeHtml(category)}</text>`,
      )
    }
  })
  return (
    `<svg class="chart" viewBox="0 0 ${WIDTH} ${HEIGHT}" width="${WIDTH}" height="${HEIGHT}" role="img" aria-label="${escapeHtml(chart.label)}">` +
    `${parts.join('')}</svg>`
  )
}

/** A round number at or above `value`: 1, 2 or 5 times a power of ten (1 for nothing). */
export function roundUp(value: number): number {
  if (!(value > 0)) return 1
  const power = 10 ** Math.floor(Math.log10(value))
  return [1, 2, 5, 10].map((step) => step * power).find((candidate) => candidate >= value)!
}
