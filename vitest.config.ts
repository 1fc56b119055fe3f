import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['tests/unit/**/*.test.ts', 'src/**/*.test.ts'],
          environment: 'node',
          testTimeout: 20_000,
          // The long-stream test forces collections to measure retained memory precisely.
          execArgv: ['--expose-gc'],
        },
      },
      {
        // Runs against a live dev-profile server; its global setup starts that server.
        test: {
          name: 'integration',
          include: ['tests/integration/**/*.test.ts'],
          globalSetup: ['tests/integration/global-setup.ts'],
          // One file at a time: they share one server, and its CPU-bound models are the bottleneck.
          fileParallelism: false,
          environment: 'node',
          testTimeout: 120_000,
          hookTimeout: 180_000,
        },
      },
    ],
  },
})
