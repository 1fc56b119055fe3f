// The wire is snake_case, the SDK camelCase. Keys are converted generically so fields the
// server adds later still travel; values (texts, history contents) are never touched.

const SNAKE = /_([a-z0-9])/g
const CAMEL = /[A-Z]/g

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

function mapKeys(value: unknown, rename: (key: string) => string): unknown {
  if (Array.isArray(value)) return value.map((item) => mapKeys(item, rename))
  if (!isPlainObject(value)) return value
  const out: Record<string, unknown> = {}
  for (const key of Object.keys(value)) out[rename(key)] = mapKeys(value[key], rename)
  return out
}

/** `finish_reason` → `finishReason`, recursively through plain objects and arrays. */
export function camelizeKeys(value: unknown): unknown {
  return mapKeys(value, (key) => (key.includes('_') ? key.replace(SNAKE, (_, c: string) => c.toUpperCase()) : key))
}

/** `maxTokens` → `max_tokens`, recursively through plain objects and arrays. */
export function snakeizeKeys(value: unknown): unknown {
  return mapKeys(value, (key) => key.replace(CAMEL, (c) => `_${c.toLowerCase()}`))
}
