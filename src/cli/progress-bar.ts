type Output = { write(text: string): unknown; isTTY?: boolean }

/**
 * Progress of many jobs on stderr: a bar redrawn in place on a terminal, one line per finished
 * job elsewhere (logs stay readable), in the style of {@link Spinner}.
 */
export class ProgressBar {
  static readonly WIDTH = 24
  #done = 0
  #running = 0
  #failed = 0
  #started = Date.now()
  #timer: ReturnType<typeof setInterval> | undefined

  constructor(
    private readonly out: Output,
    private readonly total: number,
  ) {}

  /** A job began. */
  start(): void {
    this.#running++
    this.#redraw()
  }

  /** A job ended; `failed` counts it apart. */
  finish(label: string, outcome: string, failed = false): void {
    this.#running--
    this.#done++
    if (failed) this.#failed++
    if (!this.out.isTTY) this.out.write(`pictale: eval ${this.#done}/${this.total}: ${label}: ${outcome}\n`)
    else this.#redraw()
  }

  /** Removes the bar (before the summary is printed). */
  clear(): void {
    if (this.#timer === undefined) return
    clearInterval(this.#timer)
    this.#timer = undefined
    this.out.write('\r\u001b[2K')
  }

  #redraw(): void {
    if (!this.out.isTTY) return
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.#draw(), 500)
      this.#timer.unref?.()
    }
    this.#draw()
  }

  #draw(): void {
    const filled = Math.round((this.#done / this.total) * ProgressBar.WIDTH)
    const bar = '█'.repeat(filled) + '░'.repeat(ProgressBar.WIDTH - filled)
    const seconds = Math.round((Date.now() - this.#started) / 1000)
    const parts = [`${this.#done}/${this.total}`, `${this.#running} running`]
    if (this.#failed) parts.push(`${this.#failed} failed`)
    parts.push(`${seconds} s`)
    this.out.write(`\r\u001b[2K${bar} ${parts.join(' · ')}`)
  }
}
