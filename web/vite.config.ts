/// <reference types="vitest/config" />
import { defineConfig } from "vite";
import vue from "@vitejs/plugin-vue";

// `npm run dev` serves the console with hot reload and forwards the API (and the
// live WebSocket) to a running gateway: PORTCULLIS_URL, default 127.0.0.1:8080.
const gateway = process.env.PORTCULLIS_URL ?? "http://127.0.0.1:8080";

export default defineConfig({
  plugins: [vue()],
  server: {
    proxy: {
      "/api": { target: gateway, ws: true, changeOrigin: true },
      "/healthz": gateway,
    },
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    assetsDir: "assets",
    sourcemap: false,
    chunkSizeWarningLimit: 500,
  },
  test: {
    environment: "happy-dom",
    include: ["src/**/*.test.ts"],
  },
});
