#!/usr/bin/env python3
"""Verify an Accord DSSE envelope with securesystemslib, the reference DSSE implementation
(used by in-toto and python-tuf), given only the signers' public key files.

usage: dsse_verify.py ENVELOPE.json PUB.pem [PUB.pem ...]
Every key must have signed (threshold = number of keys). Exit 0 on success.
"""
import hashlib
import json
import sys

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey


def main() -> int:
    envelope_path, *pub_paths = sys.argv[1:]
    with open(envelope_path, "rb") as f:
        envelope = Envelope.from_dict(json.load(f))
    keys = []
    for p in pub_paths:
        with open(p, "rb") as f:
            pk = load_pem_public_key(f.read())
        raw = pk.public_bytes(Encoding.Raw, PublicFormat.Raw)
        # Accord's key id: SHA-256 of the raw 32-byte public key, lower-case hex.
        keys.append(SSlibKey.from_crypto(pk, keyid=hashlib.sha256(raw).hexdigest(), scheme="ed25519"))
    accepted = envelope.verify(keys, len(keys))
    print(f"securesystemslib verified {len(accepted)} of {len(keys)} signatures "
          f"(payloadType {envelope.payload_type})")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # report, do not trace back: the Rust test prints this line
        print(f"verification failed: {type(e).__name__}: {e}")
        sys.exit(1)
