// Runs examples/proxy-server.ts, the backend route a browser page uses instead of holding an
// API key, in its own process group, and resolves once it listens.
import { spawn } from 'node:child_process'
import { join } from 'node:path'

/**
 * @param root the repository
 * @param port where it listens
 * @param baseURL the pictale server it passes requests to
 * @param apiKey the key it adds to them
 * @returns `{ output(), stop() }`
 */
export async function startProxyExample({ root, port, baseURL, apiKey, timeoutMs = 30_000 }) {
  const child = spawn(join(root, 'node_modules', '.bin', 'tsx'), ['examples/proxy-server.ts', '--port', String(port), '--base-url', baseURL], {
    cwd: root,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PICTALE_API_KEY: apiKey, MODAL_KEY: '', MODAL_SECRET: '' },
  })
  let output = ''
  const stop = () => {
    try {
      process.kill(-child.pid, 'SIGKILL')
    } catch {
      // Already gone.
    }
  }
  process.once('exit', stop)
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`examples/proxy-server.ts did not start in ${timeoutMs} ms:\n${output}`)), timeoutMs)
    const collect = (chunk) => {
      output += chunk
      if (/^proxy: http/m.test(output)) {
        clearTimeout(timer)
        resolve()
      }
    }
    child.stdout.setEncoding('utf8').on('data', collect)
    child.stderr.setEncoding('utf8').on('data', collect)
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`examples/proxy-server.ts exited (code ${code}):\n${output}`))
    })
  })
  return {
    output: () => output,
    stop() {
      process.removeListener('exit', stop)
      stop()
    },
  }
}
