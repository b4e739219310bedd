"""Identity: one CA per run and one X.509 SVID per service account, with the SPIFFE ID
`spiffe://<trust-domain>/ns/default/sa/<sa>` as its only URI SAN (as SPIRE issues them).

Keys are written mode 0600 under the run directory; the mesh stage hands each proxy copies
of exactly the keys its role may hold (and nothing else)."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_TRUST_DOMAIN = "cluster.local"


def spiffe_id(trust_domain: str, sa: str) -> str:
    return f"spiffe://{trust_domain}/ns/default/sa/{sa}"


@dataclass(frozen=True)
class Identities:
    """Where a run's CA and SVIDs live: <dir>/ca.crt, <dir>/<sa>.crt and <dir>/<sa>.key."""

    dir: Path
    trust_domain: str

    @property
    def ca_cert(self) -> Path:
        return self.dir / "ca.crt"

    def cert(self, sa: str) -> Path:
        return self.dir / f"{sa}.crt"

    def key(self, sa: str) -> Path:
        return self.dir / f"{sa}.key"

    def spiffe_id(self, sa: str) -> str:
        return spiffe_id(self.trust_domain, sa)


def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def issue(directory: Path, trust_domain: str, service_accounts: list[str], days: int = 7,
          ca_name: str = "mesh-testbed CA") -> Identities:
    """Make a CA and one SVID per service account in `directory` (created 0700)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    valid_from, valid_to = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, ca_name),
                            x509.NameAttribute(NameOID.COMMON_NAME, trust_domain)])
    ca_cert = (
        x509.CertificateBuilder().subject_name(ca_subject).issuer_name(ca_subject)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(valid_from).not_valid_after(valid_to)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                       critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ids = Identities(directory, trust_domain)
    _write(ids.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM), 0o644)
    _write(directory / "ca.key", _key_pem(ca_key), 0o600)
    for sa in service_accounts:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder().subject_name(x509.Name([]))  # the identity is the URI SAN alone
            .issuer_name(ca_subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(valid_from).not_valid_after(valid_to)
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(ids.spiffe_id(sa))]),
                           critical=True)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False),
                           critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        _write(ids.cert(sa), cert.public_bytes(serialization.Encoding.PEM), 0o644)
        _write(ids.key(sa), _key_pem(key), 0o600)
    return ids
