"""Offline validation of exported manifests, with no cluster:

- core kinds (Namespace, ServiceAccount, ConfigMap, Deployment, Service, Job) with
  kubernetes-validate in strict mode (unknown fields are errors), against Kubernetes
  KUBERNETES_VERSION, from the schemas the package bundles;
- Istio, Gateway API and Cilium kinds against their published schemas, compiled into npm
  packages that `make setup` installs (crd/package.json: Istio 1.29.2, Gateway API v1.5.1,
  Cilium v1.19.3), run by node (crd/validate.mjs), which also reports fields the schema
  does not know;
- Chaos Mesh has no schema package: its fields are checked one by one in
  tests/unit/test_export_chaos.py, following v2.8.3.

`problems()` returns every problem as one line; [] means valid."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ..errors import TestbedError

KUBERNETES_VERSION = "1.33.0"  # the oldest release with sidecar containers GA (the Jobs' native sidecars)
CORE_API_VERSIONS = {"v1", "apps/v1", "batch/v1"}
SCHEMA_API_VERSIONS = {"security.istio.io/v1", "gateway.networking.k8s.io/v1", "cilium.io/v2"}
FIELD_TESTED_API_VERSIONS = {"chaos-mesh.org/v1alpha1"}
CRD_DIR = Path(__file__).resolve().parent / "crd"
VALIDATORS_ENV = "TESTBED_CRD_VALIDATORS"


class ValidatorsMissing(TestbedError):
    pass


def validators_dir() -> Path:
    """Where `make setup` installed the npm packages: beside the venv's own files, or where
    $TESTBED_CRD_VALIDATORS says."""
    return Path(os.environ.get(VALIDATORS_ENV) or Path(sys.prefix) / "share" / "mesh-testbed" / "crd-validators")


def _name(doc: dict) -> str:
    meta = doc.get("metadata", {})
    return f"{doc.get('kind')}/{meta.get('name')}" + (f" in {meta['namespace']}" if meta.get("namespace") else "")


def core_problems(docs: list[dict], version: str = KUBERNETES_VERSION) -> list[str]:
    import kubernetes_validate

    out = []
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path) or "(top)"
            out.append(f"{_name(doc)}: {where}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            out.append(f"{_name(doc)}: {exc.message}")
    return out


def schema_problems(docs: list[dict]) -> list[str]:
    """Istio, Gateway API and Cilium kinds against their published schemas (node)."""
    if not docs:
        return []
    where, node = validators_dir(), shutil.which("node")
    if node is None or not (where / "node_modules" / "@kubernetes-models").is_dir():
        raise ValidatorsMissing(f"the custom resources' schema validators are not installed in {where} "
                                f"(node {'found' if node else 'missing'}): run `make setup`")
    # evaluated in the packages' directory, so their names resolve there; the manifests on stdin
    r = subprocess.run([node, "--input-type=module", "--eval", (CRD_DIR / "validate.mjs").read_text()],
                       input=json.dumps(docs), capture_output=True, text=True, cwd=where, timeout=120)
    if r.returncode != 0:
        raise TestbedError(f"the schema validator failed: {r.stderr.strip()[-2000:]}")
    return _verdicts(docs, json.loads(r.stdout))


def _verdicts(docs: list[dict], verdicts: list[dict]) -> list[str]:
    out = []
    for doc, v in zip(docs, verdicts, strict=True):
        out += [f"{_name(doc)}: {e}" for e in v["errors"]]
        out += [f"{_name(doc)}: {path}: not a field of the published schema" for path in v["unknown"]]
    return out


def problems(docs: list[dict], version: str = KUBERNETES_VERSION) -> list[str]:
    """Every problem with these manifests; Chaos Mesh kinds are left to their field tests."""
    core = [d for d in docs if d.get("apiVersion") in CORE_API_VERSIONS]
    crds = [d for d in docs if d.get("apiVersion") in SCHEMA_API_VERSIONS]
    known = CORE_API_VERSIONS | SCHEMA_API_VERSIONS | FIELD_TESTED_API_VERSIONS
    out = [f"{_name(d)}: no validator for apiVersion {d.get('apiVersion')!r}" for d in docs
           if d.get("apiVersion") not in known]
    return out + core_problems(core, version) + schema_problems(crds)
