const KINDS = Symbol.for('pictale.error.kinds')

type ErrorClass = abstract new (...args: any[]) => PictaleError

/** Options every pictale error accepts. */
export interface PictaleErrorOptions {
  /** The underlying error, when there is one. */
  cause?: unknown
}

/**
 * Base class of every error the SDK throws.
 *
 * Checks with `instanceof` (or {@link PictaleError.is}) work even when two copies of the package
 * are loaded (for example one through `pictale` and one through `pictale/node` in a CJS app):
 * each instance carries its class names under `Symbol.for('pictale.error.kinds')`.
 */
export class PictaleError extends Error {
  /** Stable name of this class, used for cross-copy `instanceof` checks. */
  static readonly kind: string = 'PictaleError'

  /** Machine-readable error code: the server's code, or one of the SDK's own. */
  readonly code: string

  constructor(code: string, message: string, options: PictaleErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    const kinds: string[] = []
    for (let ctor: any = new.target; ctor && ctor !== Error; ctor = Object.getPrototypeOf(ctor)) {
      if (Object.prototype.hasOwnProperty.call(ctor, 'kind')) kinds.push(ctor.kind)
    }
    Object.defineProperty(this, KINDS, { value: kinds, enumerable: false })
    this.name = kinds[0] ?? 'PictaleError'
  }

  /** True when `value` is an instance of this class (from any copy of the package). */
  static is<T extends ErrorClass>(this: T, value: unknown): value is InstanceType<T> {
    return hasKind(value, (this as unknown as { kind: string }).kind)
  }

  /** Makes `instanceof` use the brand, so it also recognises instances from another copy. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return hasKind(value, (this as unknown as { kind: string }).kind)
  }
}

/**
 * Adds class names to an instance's brand, for an error that belongs to a second family
 * without inheriting from it (see `ContentRefusedError`). Internal: not exported by the package.
 */
export function brandAlso(error: PictaleError, ...kinds: string[]): void {
  ;(error as unknown as { [KINDS]: string[] })[KINDS].push(...kinds)
}

/** `message`, naming `reason` when it does not already. Internal: not exported by the package. */
export function withReason(message: string, reason: string | undefined): string {
  return reason === undefined || message.includes(reason) ? message : `${message} (${reason})`
}

function hasKind(value: unknown, kind: string): boolean {
  if (typeof value !== 'object' || value === null) return false
  const kinds = (value as { [KINDS]?: unknown })[KINDS]
  return Array.isArray(kinds) && kinds.includes(kind)
}
