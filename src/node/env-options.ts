import type { ClientOptions } from '../client-options'

/** Environment variables `pictale/node` reads for options the caller left out. */
export const ENV_NAMES = {
  baseURL: 'PICTALE_BASE_URL',
  apiKey: 'PICTALE_API_KEY',
  modalKey: 'MODAL_KEY',
  modalSecret: 'MODAL_SECRET',
} as const

/** `options` with `baseURL`, `apiKey` and `modal` filled from `env` where they are missing. */
export function withEnvDefaults(
  options: Partial<ClientOptions>,
  env: Record<string, string | undefined>,
): Partial<ClientOptions> {
  const modalKey = env[ENV_NAMES.modalKey]
  const modalSecret = env[ENV_NAMES.modalSecret]
  return {
    ...options,
    baseURL: options.baseURL ?? env[ENV_NAMES.baseURL],
    apiKey: options.apiKey ?? (env[ENV_NAMES.apiKey] || undefined),
    modal: options.modal ?? (modalKey && modalSecret ? { key: modalKey, secret: modalSecret } : undefined),
  } as Partial<ClientOptions>
}
