// Validates AsyncAPI documents with the official parser (@asyncapi/parser, pinned in
// package.json): the same rules `asyncapi validate` applies (the specification's JSON
// Schema, the payload schemas, Spectral's AsyncAPI ruleset).
//
//   node tools/asyncapi/validate.mjs docs/asyncapi.yaml [more.yaml ...]
//
// Prints every diagnostic that is an error or a warning, with where it is, and exits 1 if
// there is any (hints and information are printed and do not fail). Exit 2: bad usage.
import { Parser, fromFile, DiagnosticSeverity } from '@asyncapi/parser';

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: node tools/asyncapi/validate.mjs FILE...');
  process.exit(2);
}

const names = {
  [DiagnosticSeverity.Error]: 'error',
  [DiagnosticSeverity.Warning]: 'warning',
  [DiagnosticSeverity.Information]: 'information',
  [DiagnosticSeverity.Hint]: 'hint',
};

const parser = new Parser();
let failed = false;
for (const file of files) {
  const { document, diagnostics } = await fromFile(parser, file).parse();
  let problems = 0;
  for (const diagnostic of diagnostics) {
    const severity = names[diagnostic.severity] ?? String(diagnostic.severity);
    const where = diagnostic.path.length ? diagnostic.path.join('.') : '(document)';
    console.log(`${file}: ${severity} ${diagnostic.code}: ${diagnostic.message} at ${where}`);
    if (diagnostic.severity <= DiagnosticSeverity.Warning) problems += 1;
  }
  if (document === undefined || problems > 0) {
    failed = true;
    console.log(`${file}: INVALID (${problems} errors or warnings)`);
  } else {
    console.log(`${file}: valid AsyncAPI ${document.version()}`);
  }
}
process.exit(failed ? 1 : 0);
