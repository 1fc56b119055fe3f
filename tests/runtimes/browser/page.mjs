// The smoke test in a browser page. The query string says where the client goes (`baseURL`,
// `apiKey`) and, optionally, another place to read runs back from (`inspectURL`,
// `inspectKey`). Keys in a URL are fine for a local test server only.
import * as pictale from 'pictale'
import { smoke } from '/smoke.mjs'

const params = new URLSearchParams(location.search)
const optional = (name) => params.get(name) ?? undefined
const baseURL = params.get('baseURL')
const apiKey = optional('apiKey')

window.smokeOutcome = smoke(pictale, {
  baseURL,
  apiKey,
  inspect: { baseURL: optional('inspectURL') ?? baseURL, apiKey: optional('inspectKey') ?? apiKey },
  log: (line) => console.log(line),
}).then(
  (passed) => ({ ok: true, passed }),
  (error) => ({ ok: false, error: `${error.stack ?? error}${error.cause ? `\ncaused by: ${error.cause.stack ?? error.cause}` : ''}` }),
)
