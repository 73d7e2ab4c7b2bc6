// Vite build of the webmail (docs/webmail.md): `npm run build:webmail` (run by npm install and by
// the first npm start) writes webmail/dist, served by src/http/webmail-assets.ts. Hashed file
// names under assets/; no inline script (the CSP allows our own files only); no module preload
// polyfill (it would be an inline script in older Vite versions and every supported browser has it).
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

export default defineConfig({
  root: import.meta.dirname,
  plugins: [react()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    reportCompressedSize: false,
  },
  logLevel: 'warn',
});
