// Reads a JSON array of Kubernetes objects on stdin and validates each one
// against the OpenAPI schema of its apiVersion/kind, with the models of the
// pinned kubernetes-models package (offline: the schemas ship inside it).
// Prints one line per object, "ok KIND NAME" or "invalid KIND NAME: why",
// or "skip" for kinds it has no model of (CRDs); exits 1 if any is invalid.
import { readFileSync } from 'node:fs';

const objects = JSON.parse(readFileSync(0, 'utf8'));
let invalid = 0;
for (const obj of objects) {
  const [group, version] = obj.apiVersion.includes('/') ? obj.apiVersion.split('/') : [null, obj.apiVersion];
  const where = group ? `kubernetes-models/${group}/${version}/${obj.kind}` : `kubernetes-models/${version}/${obj.kind}`;
  const label = `${obj.kind} ${obj.metadata?.name}`;
  let Model;
  try {
    Model = (await import(where))[obj.kind];
  } catch {
    console.log(`skip ${label} (${obj.apiVersion}: no model)`);
    continue;
  }
  try {
    new Model(obj).validate();
    console.log(`ok ${label}`);
  } catch (err) {
    invalid++;
    console.log(`invalid ${label}: ${err.message}`);
  }
}
process.exit(invalid ? 1 : 0);
