// The page's origin: serves the smoke page, the installed package's ESM build (and its
// dependencies') straight from a consumer project's node_modules through an import map, with no
// bundler in between, and passes `/api/pictale/*` to a backend proxy, so the page can reach the
// pictale server both cross-origin and same-origin.
import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs'
import { createServer, request as httpRequest } from 'node:http'
import { extname, join, normalize, sep } from 'node:path'
import { fileURLToPath } from 'node:url'

const HERE = fileURLToPath(new URL('.', import.meta.url))
const FILES = { '/page.mjs': join(HERE, 'page.mjs'), '/smoke.mjs': join(HERE, '..', 'smoke.mjs') }
const TYPES = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.json': 'application/json', '.map': 'application/json' }
const CONDITIONS = ['browser', 'import', 'module', 'default']

/**
 * @param nodeModules the consumer project's node_modules (with `pictale` installed)
 * @param apiTarget origin of the proxy that `/api/pictale/*` is passed to
 * @returns `{ origin, close() }`
 */
export async function startStaticServer({ nodeModules, apiTarget }) {
  const page = pageHtml(importMap(nodeModules))
  const server = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://page').pathname
    if (path.startsWith('/api/pictale/')) return forward(request, response, apiTarget)
    if (path === '/') return send(response, 200, 'text/html; charset=utf-8', page)
    if (path === '/favicon.ico') return send(response, 204)
    const file = FILES[path] ?? (path.startsWith('/modules/') ? inside(nodeModules, path.slice('/modules/'.length)) : undefined)
    if (!file || !existsSync(file) || !statSync(file).isFile()) return send(response, 404, 'text/plain', 'not found')
    response.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' })
    createReadStream(file).pipe(response)
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    origin: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((resolve) => server.close(resolve).closeAllConnections()),
  }
}

function send(response, status, type, body) {
  response.writeHead(status, type ? { 'content-type': type } : {})
  response.end(body)
}

/** A path under `root`, or undefined for one that climbs out of it. */
function inside(root, relative) {
  const file = normalize(join(root, decodeURIComponent(relative)))
  return file.startsWith(root + sep) ? file : undefined
}

/** Streams both ways; the browser going away closes the request to the proxy too. */
function forward(request, response, target) {
  const upstream = httpRequest(new URL(request.url, target), { method: request.method, headers: { ...request.headers, host: new URL(target).host } }, (answer) => {
    response.writeHead(answer.statusCode ?? 502, answer.headers)
    answer.pipe(response)
  })
  upstream.on('error', () => response.destroy())
  response.on('close', () => {
    if (!response.writableFinished) upstream.destroy()
  })
  request.pipe(upstream)
}

/** `pictale` and each of its dependencies, every export resolved as a browser bundler would. */
function importMap(nodeModules) {
  const { dependencies = {} } = JSON.parse(readFileSync(join(nodeModules, 'pictale', 'package.json'), 'utf8'))
  const imports = {}
  for (const name of ['pictale', ...Object.keys(dependencies)]) {
    const manifest = JSON.parse(readFileSync(join(nodeModules, name, 'package.json'), 'utf8'))
    for (const [subpath, file] of Object.entries(esmExports(manifest))) {
      imports[name + subpath.slice(1)] = `/modules/${name}/${file.replace(/^\.\//, '')}`
    }
  }
  return { imports }
}

function esmExports(manifest) {
  const { exports } = manifest
  if (exports === undefined) return { '.': manifest.module ?? manifest.main ?? 'index.js' }
  const bySubpath = typeof exports === 'object' && Object.keys(exports).some((key) => key.startsWith('.')) ? exports : { '.': exports }
  const entries = {}
  for (const [subpath, target] of Object.entries(bySubpath)) {
    const file = pick(target)
    if (file && !subpath.includes('*')) entries[subpath] = file
  }
  return entries
}

function pick(target) {
  if (typeof target === 'string') return target
  if (!target || typeof target !== 'object') return undefined
  for (const condition of CONDITIONS) {
    const file = condition in target ? pick(target[condition]) : undefined
    if (file) return file
  }
  return undefined
}

function pageHtml(map) {
  return `<!doctype html>
<meta charset="utf-8">
<title>pictale smoke test</title>
<script type="importmap">${JSON.stringify(map)}</script>
<script type="module" src="/page.mjs"></script>
`
}
