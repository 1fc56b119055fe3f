// Terminal output for the examples: headings, a spinner while waiting, and model text made
// safe to print. On a terminal the spinner animates on one line; anywhere else (CI, a pipe,
// a file) each waiting message is printed once as a plain line and no control codes appear.

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏']
const CLEAR_LINE = '\r\x1b[2K'

export const interactive = Boolean(process.stdout.isTTY) && process.env.TERM !== 'dumb'

const style = (code: string) => (text: string) => (interactive ? `\x1b[${code}m${text}\x1b[0m` : text)
export const bold = style('1')
export const dim = style('2')

/**
 * Model output with control characters removed. The dev profile's random-weight models emit
 * arbitrary tokens, escape characters included, which must not reach a terminal.
 */
export function printable(text: string): string {
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, '')
}

export function heading(title: string): void {
  const line = `── ${title} `
  process.stdout.write(`\n${bold(line.padEnd(Math.max(72, line.length + 4), '─'))}\n`)
}

export interface Spinner {
  /** Shows `message` (replacing the current one); starts the spinner if it is stopped. */
  update(message: string): void
  /** Clears the spinner line; `finalMessage` is printed in its place when given. */
  stop(finalMessage?: string): void
}

export function spinner(): Spinner {
  let timer: NodeJS.Timeout | undefined
  let message = ''
  let frame = 0
  const draw = () => process.stdout.write(`${CLEAR_LINE}${FRAMES[frame++ % FRAMES.length]} ${message}`)
  return {
    update(next) {
      if (next === message && (timer || !interactive)) return
      message = next
      if (!interactive) {
        process.stdout.write(`… ${message}\n`)
        return
      }
      draw()
      timer ??= setInterval(draw, 80)
    },
    stop(finalMessage) {
      if (timer) {
        clearInterval(timer)
        timer = undefined
        process.stdout.write(CLEAR_LINE)
      }
      message = ''
      if (finalMessage) process.stdout.write(`${finalMessage}\n`)
    },
  }
}
