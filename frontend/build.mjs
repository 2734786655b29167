// Copies the browser builds of Kehu's front-end libraries into the Django static folder.
// The files come from the npm registry at build time; they are never committed (see .gitignore).
import { copyFileSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const target = join(here, "..", "kehu", "web", "static", "vendor");
mkdirSync(target, { recursive: true });

const files = [
  ["htmx.org/dist/htmx.min.js", "htmx.min.js"],
  ["echarts/dist/echarts.min.js", "echarts.min.js"],
];
for (const [source, name] of files) {
  copyFileSync(join(here, "node_modules", source), join(target, name));
}
const versions = Object.fromEntries(
  ["htmx.org", "echarts"].map((p) => [p, JSON.parse(readFileSync(join(here, "node_modules", p, "package.json"))).version]),
);
console.log(`kehu/web/static/vendor: ${files.map((f) => f[1]).join(", ")}`, versions);
