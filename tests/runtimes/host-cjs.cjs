// The smoke test through `require` (Node): the package's CommonJS build.
const pictale = require('pictale')

import('./host.mjs').then(({ runHost }) => runHost(pictale, require.resolve('pictale'), 'cjs'))
