// Builds the workstation's pages into ../web/static (served by the review service at /ui/).
// Every library comes from node_modules (npm registry at install time): nothing from a CDN.
import { build } from "esbuild";
import { cpSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "web", "static");
rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, "assets"), { recursive: true });

await build({
  entryPoints: { worklist: join(here, "src", "worklist-page.js"), study: join(here, "src", "study-page.js") },
  bundle: true,
  format: "esm",
  minify: true,
  sourcemap: true,
  target: ["chrome120", "firefox120", "safari17"],
  outdir: join(out, "assets"),
  logLevel: "warning",
});
cpSync(join(here, "src", "index.html"), join(out, "index.html"));
cpSync(join(here, "src", "study.html"), join(out, "study.html"));
cpSync(join(here, "src", "workstation.css"), join(out, "assets", "workstation.css"));
// OpenSeadragon's own button images (its prefixUrl).
cpSync(join(here, "node_modules", "openseadragon", "build", "openseadragon", "images"), join(out, "assets", "osd"), {
  recursive: true,
});
console.log(`workstation built into ${out}`);
