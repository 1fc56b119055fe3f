/**
 * A progress line on stderr while nothing is written yet: a spinner redrawn in place on a
 * terminal, one line per new message elsewhere (logs stay readable).
 */
export class Spinner {
  static readonly FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏']
  #message = ''
  #frame = 0
  #timer: ReturnType<typeof setInterval> | undefined

  constructor(private readonly out: { write(text: string): unknown; isTTY?: boolean }) {}

  show(message: string): void {
    if (message === this.#message) return
    this.#message = message
    if (!this.out.isTTY) {
      this.out.write(`pictale: ${message}\n`)
      return
    }
    this.#draw()
    this.#timer ??= setInterval(() => this.#draw(), 100)
  }

  clear(): void {
    if (this.#timer !== undefined) {
      clearInterval(this.#timer)
      this.#timer = undefined
      this.out.write('\r\u001b[2K')
    }
    this.#message = ''
  }

  #draw(): void {
    this.#frame = (this.#frame + 1) % Spinner.FRAMES.length
    this.out.write(`\r\u001b[2K${Spinner.FRAMES[this.#frame]} ${this.#message}`)
  }
}
