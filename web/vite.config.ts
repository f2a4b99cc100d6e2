// Builds the UI into the Python package's static folder, served by `runyard server` at /.
import { defineConfig } from "vitest/config";
import react from "@vitejs/plugin-react";

export default defineConfig({
  plugins: [react()],
  base: "/",
  build: {
    outDir: "../runyard/server/static",
    emptyOutDir: true,
    chunkSizeWarningLimit: 500,
  },
  server: {
    // `npm run dev` talks to a local `runyard server` for the API.
    proxy: { "/api": "http://127.0.0.1:8765" },
  },
  test: {
    include: ["src/**/*.test.ts"],
    environment: "node",
  },
});
