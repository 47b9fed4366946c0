// Builds the NOC screen and GraphiQL into dist/, the folder the argus binary embeds
// (services/api/src/page.rs): the screen bundled with its libraries, GraphiQL from its packages.
import { build, transform } from "esbuild";
import { copyFile, mkdir, readFile, rm, writeFile } from "node:fs/promises";

const dist = new URL("./dist/", import.meta.url);
const src = new URL("./src/", import.meta.url);
const modules = new URL("./node_modules/", import.meta.url);

await rm(dist, { recursive: true, force: true });
await mkdir(new URL("vendor/", dist), { recursive: true });

await build({
  entryPoints: [new URL("screen.js", src).pathname, new URL("screen.css", src).pathname],
  outdir: dist.pathname,
  bundle: true,
  minify: true,
  format: "esm",
  target: ["chrome110", "firefox110", "safari16"],
  legalComments: "eof",
  logLevel: "warning",
});

for (const page of ["index.html", "graphiql.html", "graphiql-boot.js"]) {
  await copyFile(new URL(page, src), new URL(page, dist));
}

// GraphiQL ships as browser bundles expecting React on the page; minified once more to halve them
const vendor = {
  "react.js": "react/umd/react.production.min.js",
  "react-dom.js": "react-dom/umd/react-dom.production.min.js",
  "graphiql.js": "graphiql/graphiql.min.js",
  "graphiql.css": "graphiql/graphiql.min.css",
};
for (const [name, path] of Object.entries(vendor)) {
  const code = await readFile(new URL(path, modules), "utf8");
  const loader = name.endsWith(".css") ? "css" : "js";
  const { code: minified } = await transform(code, { loader, minify: true, legalComments: "eof" });
  await writeFile(new URL(`vendor/${name}`, dist), minified);
}
