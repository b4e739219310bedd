#!/usr/bin/env bash
# Idempotent set-up for mesh-testbed on Debian 12 (root). Skips what is already done.
# Used by `make setup` (and so by `make demo` / `make test`) and by the Vagrantfile.
set -euo pipefail
umask 022  # the proxies run as uids of their own and must be able to run the venv's Envoy

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
log() { printf '[provision] %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
  echo "provision.sh must run as root (make setup runs it; from a normal account: sudo make setup)" >&2
  exit 2
fi

# --- Debian packages -------------------------------------------------------
# mininet: Debian's (PyPI's lacks mnexec), without its recommended Open vSwitch: the mininet
# backend uses Linux bridges and no controller. vagrant: `vagrant validate` checks the
# Vagrantfile in the tests. ping, tcpdump, jq: Mininet's pingall and the labs' steps.
PKGS=(python3 python3-venv python3-bpfcc bpftool libbpf1 iproute2 iptables nftables util-linux
      procps hey wabt curl make chromium mininet vagrant iputils-ping tcpdump jq)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

# Kernel headers for bcc: the running kernel's own package when Debian has one,
# else Debian's generic headers linked in place (kernels built elsewhere ship none).
KVER="$(uname -r)"
need_headers=0
[ -e "/lib/modules/$KVER/build/Makefile" ] || need_headers=1

if [ ${#missing[@]} -gt 0 ] || [ "$need_headers" = 1 ]; then
  export DEBIAN_FRONTEND=noninteractive
  log "apt-get update"
  apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
  log "installing: ${missing[*]}"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ "$need_headers" = 1 ]; then
  if apt-cache show "linux-headers-$KVER" >/dev/null 2>&1; then
    log "installing linux-headers-$KVER"
    apt-get install -y -qq --no-install-recommends "linux-headers-$KVER" >/dev/null
  else
    log "no headers package for $KVER: linking Debian's generic headers"
    apt-get install -y -qq --no-install-recommends linux-headers-amd64 >/dev/null
    hdr="$(ls -d /usr/src/linux-headers-*-amd64 | sort -V | tail -n 1)"
    common="${hdr%-amd64}-common"
    mkdir -p "/lib/modules/$KVER"
    ln -sfn "$hdr" "/lib/modules/$KVER/build"
    ln -sfn "$common" "/lib/modules/$KVER/source"
  fi
fi

# --- Python venv (Debian's python3, so that bcc is visible) ----------------
stamp="$VENV/.provisioned"
want="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  log "venv up to date"
else
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV"
    /usr/bin/python3 -m venv --system-site-packages "$VENV"
  fi
  log "installing the project and its pinned dependencies"
  "$VENV/bin/pip" install -q --disable-pip-version-check -e "$ROOT[test]"
  echo "$want" > "$stamp"
fi

# --- Schemas of the custom resources `testbed export k8s` writes -------------
# Istio's, the Gateway API's and Cilium's published schemas, compiled into npm packages
# (pinned by testbed/export/crd/package-lock.json), beside the venv; the tests validate
# every exported manifest with them (testbed/export/validate.py).
crd_src="$ROOT/testbed/export/crd"
crd_dir="$VENV/share/mesh-testbed/crd-validators"
crd_want="$(cat "$crd_src/package.json" "$crd_src/package-lock.json" | sha256sum | cut -d' ' -f1)"
if [ -f "$crd_dir/.provisioned" ] && [ "$(cat "$crd_dir/.provisioned")" = "$crd_want" ]; then
  log "schema validators up to date"
else
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    log "installing nodejs and npm"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  fi
  log "installing the custom resources' schema validators"
  mkdir -p "$crd_dir"
  cp "$crd_src/package.json" "$crd_src/package-lock.json" "$crd_dir/"
  (cd "$crd_dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  echo "$crd_want" > "$crd_dir/.provisioned"
fi
log "ready"
