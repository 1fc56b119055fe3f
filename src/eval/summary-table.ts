import type { EvalReport } from './report'
import { betterArrow, formatMetric, RUN_COUNTS, SUMMARY_METRICS } from './summary-metrics'

/** The summary as a plain-text table: a row per metric, a column per preset. */
export function renderSummaryTable(report: EvalReport): string {
  const presets = report.summary
  const rows = [...RUN_COUNTS, ...SUMMARY_METRICS].map((metric) => [
    `${betterArrow(metric)} ${metric.label}`,
    ...presets.map((summary) => formatMetric(summary[metric.key], metric.unit)),
  ])
  const header = ['', ...presets.map((summary) => summary.preset)]
  const widths = header.map((_, column) => Math.max(...[header, ...rows].map((row) => [...row[column]!].length)))
  const line = (row: string[]) =>
    row.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join('  ')
  const rule = widths.map((width) => '─'.repeat(width)).join('  ')
  return [line(header), rule, ...rows.slice(0, RUN_COUNTS.length).map(line), rule, ...rows.slice(RUN_COUNTS.length).map(line)].join('\n')
}
