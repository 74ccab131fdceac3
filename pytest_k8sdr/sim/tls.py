"""A throw-away CA and a serving certificate for the simulator's HTTPS endpoint."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class ServingCerts:
    """PEM files written by `generate`: the CA (for clients) and the server's cert and key."""

    ca_pem: bytes
    cert_path: Path
    key_path: Path
    ca_path: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def load_or_generate(directory: Path, host: str) -> ServingCerts:
    """The certificates already under `directory`, or new ones from `generate`.

    A restarted API server keeps its PKI, as kubeadm's /etc/kubernetes/pki outlives
    kube-apiserver, so clients holding the old CA keep trusting it.
    """
    ca_path = directory / "ca.crt"
    cert_path = directory / "apiserver.crt"
    key_path = directory / "apiserver.key"
    if ca_path.exists() and cert_path.exists() and key_path.exists():
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        served = {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
        served |= set(names.get_values_for_type(x509.DNSName))
        if host in served and cert.not_valid_after_utc > datetime.datetime.now(datetime.UTC):
            return ServingCerts(
                ca_pem=ca_path.read_bytes(), cert_path=cert_path, key_path=key_path, ca_path=ca_path
            )
    return generate(directory, host)


def generate(directory: Path, host: str, *, days: int = 30) -> ServingCerts:
    """Create a CA and a certificate for `host`, 127.0.0.1 and localhost, under `directory`."""
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("k8sdr-sim-ca")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    alt: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.DNSName("kubernetes"),
        x509.DNSName("kubernetes.default.svc"),
    ]
    ips = {"127.0.0.1", host}
    for ip in sorted(ips):
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(ip)))
        except ValueError:
            alt.append(x509.DNSName(ip))
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("kube-apiserver"))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    ca_path = directory / "ca.crt"
    cert_path = directory / "apiserver.crt"
    key_path = directory / "apiserver.key"
    ca_path.write_bytes(ca_pem)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.touch(mode=0o600)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ServingCerts(ca_pem=ca_pem, cert_path=cert_path, key_path=key_path, ca_path=ca_path)
