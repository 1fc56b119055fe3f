/** Bad input to the harness (an unknown preset, an unreadable presets file): the caller's to fix. */
export class EvalUsageError extends Error {
  override readonly name = 'EvalUsageError'
}
