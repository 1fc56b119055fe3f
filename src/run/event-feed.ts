type Waiter<T> = { resolve(result: IteratorResult<T>): void; reject(error: unknown): void }

const DONE: IteratorReturnResult<undefined> = { value: undefined, done: true }

/**
 * One async source of events shared by at most one iterator and a drain, so a run can be
 * iterated and awaited from a single request.
 *
 * - Only iterated: the source is read as the iterator asks (its pace is the reading pace).
 * - Drained (the run is awaited): the source is read to its end. Events go to the iterator,
 *   buffered when it is behind, or are dropped when there is none, so awaiting alone keeps
 *   nothing.
 * - An iterator can start only while nothing has been dropped, and only once.
 */
export class EventFeed<T> {
  readonly #open: () => AsyncIterator<T>
  readonly #onReturn: () => void
  #source: AsyncIterator<T> | undefined
  #reading = false
  #draining = false
  #iterator: 'none' | 'open' | 'closed' = 'none'
  #dropped = false
  #ended = false
  /** The source's error, until the iterator has been given it. */
  #error: { value: unknown } | undefined
  readonly #buffer: T[] = []
  readonly #waiters: Waiter<T>[] = []

  /**
   * @param open Starts the source; called once, on the first read.
   * @param onReturn Called when the iterator is left early (`break`, `return`, a throw).
   */
  constructor(open: () => AsyncIterator<T>, onReturn: () => void) {
    this.#open = open
    this.#onReturn = onReturn
  }

  /** Why no iterator can start now: one already did, or events were dropped. */
  get unavailable(): 'iterated' | 'dropped' | undefined {
    if (this.#iterator !== 'none') return 'iterated'
    return this.#dropped ? 'dropped' : undefined
  }

  /** Reads the source to its end (idempotent). */
  drain(): void {
    this.#draining = true
    this.#pump()
  }

  /**
   * Ends the feed now with `error`: buffered events are discarded, the iterator's pending or
   * next read rejects with it, and the source is told to return. No effect once ended.
   */
  stop(error: unknown): void {
    if (this.#ended) return
    this.#buffer.length = 0
    this.#end({ value: error })
    this.#source?.return?.().catch(() => {})
  }

  /** The one iterator; check {@link unavailable} first. */
  iterate(): AsyncIterator<T> {
    if (this.unavailable !== undefined) throw new Error(`event feed ${this.unavailable}`)
    this.#iterator = 'open'
    return {
      next: () => {
        if (this.#buffer.length > 0) return Promise.resolve({ value: this.#buffer.shift()!, done: false })
        if (this.#iterator === 'closed') return Promise.resolve(DONE)
        if (this.#ended) {
          const error = this.#error
          this.#error = undefined
          return error ? Promise.reject(error.value) : Promise.resolve(DONE)
        }
        return new Promise<IteratorResult<T>>((resolve, reject) => {
          this.#waiters.push({ resolve, reject })
          this.#pump()
        })
      },
      return: () => {
        if (this.#iterator === 'open') {
          this.#iterator = 'closed'
          this.#onReturn()
          this.stop(undefined)
        }
        return Promise.resolve(DONE)
      },
    }
  }

  #wantsMore(): boolean {
    if (this.#ended) return false
    return this.#draining || (this.#iterator === 'open' && this.#waiters.length > 0)
  }

  /** Reads one event if someone wants it, then again until no one does; one read at a time. */
  #pump(): void {
    if (this.#reading || !this.#wantsMore()) return
    this.#reading = true
    let step: Promise<IteratorResult<T>>
    try {
      step = (this.#source ??= this.#open()).next()
    } catch (error) {
      this.#reading = false
      this.#end({ value: error })
      return
    }
    step.then(
      (result) => {
        this.#reading = false
        if (result.done) this.#end(undefined)
        else this.#deliver(result.value)
        this.#pump()
      },
      (error: unknown) => {
        this.#reading = false
        this.#end({ value: error })
      },
    )
  }

  #deliver(event: T): void {
    if (this.#ended) return
    if (this.#iterator !== 'open') {
      this.#dropped = true
      return
    }
    const waiter = this.#waiters.shift()
    if (waiter) waiter.resolve({ value: event, done: false })
    else this.#buffer.push(event)
  }

  #end(error: { value: unknown } | undefined): void {
    if (this.#ended) return
    this.#ended = true
    this.#error = this.#iterator === 'closed' ? undefined : error
    for (const waiter of this.#waiters.splice(0)) {
      const pending = this.#error
      this.#error = undefined
      if (pending) waiter.reject(pending.value)
      else waiter.resolve(DONE)
    }
  }
}
