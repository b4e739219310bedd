// Checks custom resources against their published schemas, as compiled into the
// @kubernetes-models packages (package.json beside this file). Run by validate.py with the
// packages' directory as the working directory: a JSON list of manifests on stdin, a JSON
// list of verdicts on stdout, one per manifest: {"errors": [...], "unknown": [...]}.
//
// The compiled validators check types, enums and required fields, but, as a cluster would
// prune them, let unknown fields pass. So every field a manifest sets is also probed: set to
// values of every other JSON type, a field the schema knows makes validation fail at least
// once; one that never fails is unknown to the schema (a typo, or a field of another version).

const MODULES = {
  "security.istio.io/v1": "@kubernetes-models/istio/security.istio.io/v1",
  "gateway.networking.k8s.io/v1": "@kubernetes-models/gateway-api/gateway.networking.k8s.io/v1",
  "cilium.io/v2": "@kubernetes-models/cilium/cilium.io/v2",
};
const PROBES = [true, 7, [], "probe", {}];

function errorsOf(Model, doc) {
  try {
    new Model(doc).validate();
    return [];
  } catch (e) {
    return [e.message];
  }
}

function paths(value, prefix = []) {
  let out = [];
  if (value && typeof value === "object") {
    for (const [key, inner] of Object.entries(value)) {
      const path = [...prefix, key];
      if (!Array.isArray(value)) out.push(path);
      out = out.concat(paths(inner, path));
    }
  }
  return out;
}

function replaced(doc, path, value) {
  const copy = structuredClone(doc);
  let at = copy;
  for (const key of path.slice(0, -1)) at = at[key];
  at[path[path.length - 1]] = value;
  return copy;
}

async function verdict(doc) {
  const module = MODULES[doc.apiVersion];
  if (!module) return { errors: [`no published schema here for ${doc.apiVersion}`], unknown: [] };
  const Model = (await import(module))[doc.kind];
  if (!Model) return { errors: [`no published schema here for ${doc.apiVersion} ${doc.kind}`], unknown: [] };
  const errors = errorsOf(Model, doc);
  const unknown = errors.length ? [] : paths(doc)
    .filter((p) => p[0] !== "apiVersion" && p[0] !== "kind")
    .filter((p) => PROBES.every((v) => errorsOf(Model, replaced(doc, p, v)).length === 0))
    .map((p) => p.join("."));
  return { errors, unknown };
}

let input = "";
for await (const chunk of process.stdin) input += chunk;
const docs = JSON.parse(input);
const out = [];
for (const doc of docs) out.push(await verdict(doc));
process.stdout.write(JSON.stringify(out));
