"""Offline bundle signatures in the OpenSSF model-signing format, made with ``cryptography`` alone.

``bundle.sig`` is a Sigstore bundle (v0.3, no transparency log) holding a DSSE envelope whose
in-toto statement lists the sha256 of every other file of the bundle (``manifest.json`` and
``SHA256SUMS`` included), exactly as ``model_signing`` (PyPI ``model-signing`` 1.x, "files"
serialization, predicate ``https://model_signing/signature/v1.0``) writes it, so its verifier
accepts our signatures: ``model_signing verify key BUNDLE --signature BUNDLE/bundle.sig
--public_key KEY.pub``.

Why not call the library: it pulls sigstore and ~35 other packages, needs an undeclared
pyOpenSSL, and signs with randomised ECDSA, so two signings of the same bundle differ. Here the
key is ECDSA P-256 (the curve model-signing's key signer accepts) with RFC 6979 deterministic
nonces: the same bundle signed with the same key gives the same bytes, so signed bundles stay
reproducible.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from .store import SIGNATURE, bundle_files
from ..errors import BundleError, InputError, UsageError
from .safe_io import SIGNATURE_CAP, create_new, parse_json, partial_path, read_regular, sha256_regular

KEY_CAP = 64 * 1024
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"


def _ec():
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec, ec.ECDSA(hashes.SHA256(), deterministic_signing=True)


def _pem_public(public_key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_hint(public_key) -> str:
    """model-signing's key identifier: sha256 of the PEM public key."""
    return hashlib.sha256(_pem_public(public_key)).hexdigest()


def generate_key(private_path: Path, public_path: Path) -> str:
    """Write a new P-256 private key (mode 0600) and its public key; refuse to overwrite either."""
    from cryptography.hazmat.primitives import serialization

    ec, _ = _ec()
    for path in (private_path, public_path):
        if path.exists():
            raise UsageError(f"{path} exists; refusing to overwrite a key")
    key = ec.generate_private_key(ec.SECP256R1())
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    try:
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(private_pem)
        public_path.write_bytes(_pem_public(key.public_key()))
    except OSError as e:
        raise UsageError(f"cannot write the key: {e.strerror or e}") from None
    return key_hint(key.public_key())


def _read_pem(path: Path, what: str) -> bytes:
    """A key file: a regular file (a link to one is fine: it is the user's own) of at most 64 KiB."""
    try:
        data = read_regular(Path(path), KEY_CAP, name=str(path), error=InputError, follow_symlinks=True)
    except FileNotFoundError:
        raise InputError(f"{path}: no such {what} file") from None
    if b"-----BEGIN" not in data:
        raise InputError(f"{path}: not a PEM {what} (make one with 'stackc keygen')")
    return data


def load_private_key(path: Path):
    from cryptography.hazmat.primitives import serialization

    ec, _ = _ec()
    data = _read_pem(path, "private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise InputError(f"{path}: the private key is password-protected; stackc needs an unencrypted key") from None
    except (ValueError, Exception):
        if b"PUBLIC KEY" in data:
            raise InputError(f"{path}: is a public key; signing needs the private key") from None
        raise InputError(f"{path}: not a readable PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise InputError(f"{path}: stackc signs with ECDSA P-256 keys (make one with 'stackc keygen')")
    return key


def load_public_key(path: Path):
    from cryptography.hazmat.primitives import serialization

    ec, _ = _ec()
    data = _read_pem(path, "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except Exception:
        if b"PRIVATE KEY" in data:
            raise InputError(f"{path}: is a private key; give the public key (.pub) to verify") from None
        raise InputError(f"{path}: not a readable PEM public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise InputError(f"{path}: not an ECDSA P-256 public key")
    return key


def _resources(root: Path) -> list[dict[str, str]]:
    return [{"algorithm": "sha256", "digest": sha256_regular(root / rel, rel), "name": rel}
            for rel in bundle_files(root) if rel != SIGNATURE]


def statement(root: Path, name: str | None = None) -> dict[str, Any]:
    """The in-toto statement over every file of the bundle folder but the signature itself.

    ``name`` is the bundle's published name (a build signs its staging folder, named otherwise).
    """
    resources = _resources(root)
    subject = hashlib.sha256(b"".join(bytes.fromhex(r["digest"]) for r in resources)).hexdigest()
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": name or root.name, "digest": {"sha256": subject}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "serialization": {"method": "files", "hash_type": "sha256", "allow_symlinks": False,
                              "ignore_paths": [SIGNATURE]},
            "resources": resources,
        },
    }


def _pae(payload: bytes) -> bytes:
    """DSSE pre-authentication encoding (DSSE protocol v1)."""
    return f"DSSEv1 {len(PAYLOAD_TYPE)} {PAYLOAD_TYPE} {len(payload)} ".encode() + payload


def signature_document(root: Path, private_key, name: str | None = None) -> bytes:
    """The ``bundle.sig`` bytes for a bundle folder; deterministic for the same files and key."""
    _, algorithm = _ec()
    payload = json.dumps(statement(root, name), indent=2, sort_keys=True).encode("utf-8")
    signature = private_key.sign(_pae(payload), algorithm)
    document = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": key_hint(private_key.public_key())}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": base64.b64encode(payload).decode(),
            "payloadType": PAYLOAD_TYPE,
            "signatures": [{"sig": base64.b64encode(signature).decode(), "keyid": ""}],
        },
    }
    return (json.dumps(document, indent=2) + "\n").encode("utf-8")


def _envelope(root: Path) -> tuple[str, bytes, bytes, str]:
    """``bundle.sig``'s key hint, payload, signature and payload type; BundleError if it is unsafe or malformed."""
    malformed = f"{SIGNATURE}: malformed (not a Sigstore bundle with a DSSE envelope)"
    try:
        data = read_regular(root / SIGNATURE, SIGNATURE_CAP)  # a link, FIFO, device or oversize file: refused
    except FileNotFoundError:
        raise BundleError(f"{SIGNATURE}: missing; the bundle is not signed (sign it with 'stackc sign')") from None
    try:
        document = parse_json(data, SIGNATURE)
        envelope = document["dsseEnvelope"]
        hint = document.get("verificationMaterial", {}).get("publicKey", {}).get("hint", "")
        payload = base64.b64decode(envelope["payload"], validate=True)
        raw_signature = base64.b64decode(envelope["signatures"][0]["sig"], validate=True)
        payload_type = envelope["payloadType"]
    except (BundleError, ValueError, KeyError, IndexError, TypeError, AttributeError, UnicodeDecodeError):
        raise BundleError(malformed) from None
    if not isinstance(hint, str) or not isinstance(payload_type, str):
        raise BundleError(malformed)
    return hint, payload, raw_signature, payload_type


def signature_shape_problems(root: Path) -> list[str]:
    """Without a key: a signature that is not even well-formed is a problem, never reported as present."""
    try:
        _envelope(root)
    except BundleError as e:
        return [e.message]
    return []


def signature_problems(root: Path, public_key, absent: set[str] = frozenset(), ignored: set[str] = frozenset()) -> list[str]:
    """Everything wrong with ``bundle.sig`` against this key and these files, each naming its file.

    A partial pull's bundle may lack the ``absent`` files (its left-out artifacts) and holds ``ignored``
    files of its own (``pulled.json``); every file it does hold must still match the signed digest.
    """
    from cryptography.exceptions import InvalidSignature

    try:
        hint, payload, raw_signature, payload_type = _envelope(root)
    except BundleError as e:
        return [e.message]
    if hint and hint != key_hint(public_key):
        return [f"{SIGNATURE}: signed by another key (key hint {hint[:16]}…, this key is {key_hint(public_key)[:16]}…)"]
    _, algorithm = _ec()
    try:
        public_key.verify(raw_signature, _pae(payload), algorithm)
    except InvalidSignature:
        return [f"{SIGNATURE}: bad signature (the signature or its payload changed, or another key signed it)"]
    if payload_type != PAYLOAD_TYPE:
        return [f"{SIGNATURE}: payload type {payload_type!r} is not {PAYLOAD_TYPE}"]
    try:
        signed = parse_json(payload, f"{SIGNATURE} payload")
        if signed.get("predicateType") != PREDICATE_TYPE:
            return [f"{SIGNATURE}: predicate {signed.get('predicateType')!r} is not {PREDICATE_TYPE}"]
        expected = {r["name"]: r["digest"] for r in signed["predicate"]["resources"]}
    except (ValueError, KeyError, TypeError, AttributeError, BundleError):
        return [f"{SIGNATURE}: the signed statement is malformed"]
    try:
        actual = {r["name"]: r["digest"] for r in _resources(root) if r["name"] not in ignored}
    except BundleError as e:  # a link, FIFO or device among the files
        return [e.message]
    problems = [f"{rel}: extra file, not covered by the signature" for rel in sorted(actual.keys() - expected.keys())]
    problems += [f"{rel}: missing (the signature covers it)" for rel in sorted(expected.keys() - actual.keys() - absent)]
    changed = [rel for rel in actual.keys() & expected.keys() if actual[rel] != expected[rel]]
    # the content file first: a changed SHA256SUMS or manifest is usually the echo of a changed artifact
    problems += [f"{rel}: differs from the signed digest"
                 for rel in sorted(changed, key=lambda r: (r in ("SHA256SUMS", "manifest.json"), r))]
    return problems


def write_signature(root: Path, private_key, name: str | None = None) -> None:
    """Sign a staging or bundle folder in place: ``bundle.sig`` appears by one rename, its temp file
    lives beside the folder (a stackc partial name that later builds clean up), never inside it."""
    document = signature_document(root, private_key, name)
    tmp = partial_path(root.parent, f"{root.name}.{SIGNATURE}")
    try:
        with create_new(tmp) as handle:
            handle.write(document)
        os.replace(tmp, root / SIGNATURE)
    except OSError as e:
        raise BundleError(f"cannot write {root / SIGNATURE}: {e.strerror or e}") from None
    finally:
        tmp.unlink(missing_ok=True)
