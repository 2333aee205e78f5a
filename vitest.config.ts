import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // the suites start real servers and processes: two cores, so keep the parallelism modest
    maxWorkers: 2,
    reporters: process.env.CI === 'true' ? ['default'] : ['default']
  }
})
