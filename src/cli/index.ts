#!/usr/bin/env node
// `npx pictale …`: see run-cli.ts for the commands.
import { runCli } from './run-cli'

const code = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  env: process.env,
  onInterrupt: (stop) => process.once('SIGINT', stop),
})
process.exitCode = code
