// Parse an AsyncAPI document with @asyncapi/parser and print its diagnostics as JSON lines.
// Usage: node check.mjs <document.json>; exits 1 when any diagnostic is an error or nothing could be parsed.
import { readFileSync } from "node:fs";
import { Parser } from "@asyncapi/parser";

const SEVERITIES = ["error", "warning", "info", "hint"];
const text = readFileSync(process.argv[2], "utf8");
const { document, diagnostics } = await new Parser().parse(text);
const found = diagnostics.map((item) => ({
  severity: SEVERITIES[item.severity] ?? String(item.severity),
  code: String(item.code),
  message: item.message,
  path: item.path.join("/"),
}));
process.stdout.write(JSON.stringify({ parsed: document !== undefined, diagnostics: found }) + "\n");
process.exit(document === undefined || found.some((item) => item.severity === "error") ? 1 : 0);
