import { loadSchemas } from '../schemas/load-schemas'

/**
 * Loads the client's schemas now. A client loads them on its first call, which is real module
 * I/O: in tests that fake timers, `await preloadSchemas()` first (a `beforeAll`), so that
 * advancing the fake clock finds the request already sent.
 */
export async function preloadSchemas(): Promise<void> {
  await loadSchemas()
}
