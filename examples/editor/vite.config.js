import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vite'

// `tandem/client` resolves through the repository's own package.json (a self-reference) to
// dist/client, which `npm install` builds. In your app it is simply the installed package.
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  // the page is served from anywhere (a sub-path, a test server): keep asset URLs relative
  base: './',
  clearScreen: false,
  build: { target: 'es2022', chunkSizeWarningLimit: 1_000 }
})
