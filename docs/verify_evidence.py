#!/usr/bin/env python3
"""Reference verifier of an uptime-ledger evidence file, written from docs/evidence.md.

Usage: verify_evidence.py FILE VERIFIER_KEY   (needs the `cryptography` package)
Checks the checkpoint signature with the pinned key, every entry's RFC 9162 inclusion
proof, every signature, and that each incident lists carried DOWN observations of the
service. Prints OK and what was checked, or REFUSED and why (exit status 1).
"""
import base64, hashlib, json, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.exceptions import InvalidSignature

def fail(why):
    print("REFUSED: " + why, file=sys.stderr); sys.exit(1)

def fields(buf):  # protobuf wire format -> {field number: [values]}
    out, i = {}, 0
    def varint():
        nonlocal i
        value = shift = 0
        while True:
            byte = buf[i]; i += 1
            value |= (byte & 0x7F) << shift; shift += 7
            if byte < 0x80: return value
    while i < len(buf):
        key = varint(); number, wire = key >> 3, key & 7
        if wire == 0: value = varint()
        elif wire == 2: n = varint(); value = buf[i:i + n]; i += n
        elif wire == 1: value = buf[i:i + 8]; i += 8
        elif wire == 5: value = buf[i:i + 4]; i += 4
        else: raise ValueError("wire type %d" % wire)
        out.setdefault(number, []).append(value)
    return out

def one(f, n, default=b""): return f.get(n, [default])[-1]

def verify(key, message, signature):
    try: Ed25519PublicKey.from_public_bytes(key).verify(signature, message); return True
    except (InvalidSignature, ValueError): return False

def node(l, r): return hashlib.sha256(b"\x01" + l + r).digest()

def inclusion(leaf, index, size, proof, root):  # RFC 9162 section 2.1.3.2
    if index >= size: return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0: return False
        if fn & 1 or fn == sn:
            r = node(p, r)
            while fn & 1 == 0 and fn != 0: fn >>= 1; sn >>= 1
        else: r = node(r, p)
        fn >>= 1; sn >>= 1
    return sn == 0 and r == root

def main(path, pinned):
    b = json.load(open(path))
    if b.get("format") != "uptime-ledger-evidence/1": fail("unknown format")
    if b["verifier_key"] != pinned: fail("the file's key is not the pinned key")
    name, key_id, typed = pinned.split("+", 2)
    key = base64.b64decode(typed)[1:]
    text, _, sigs = b["checkpoint"].partition("\n\n")
    text += "\n"
    ok = False
    for line in sigs.splitlines():
        signer, blob = line.split(" ")[1:3]
        blob = base64.b64decode(blob)
        if signer == name and blob[:4].hex() == key_id:
            ok = verify(key, text.encode(), blob[4:]) or fail("checkpoint signature")
    if not ok: fail("no checkpoint signature by the pinned key")
    origin, size, root = text.splitlines()[:3]
    size, root = int(size), base64.b64decode(root)
    entries = {}
    for e in sorted(b["entries"], key=lambda e: e["index"]):
        raw = base64.b64decode(e["entry"])
        proof = [bytes.fromhex(h) for h in e["inclusion_proof"]]
        if not inclusion(hashlib.sha256(b"\x00" + raw).digest(), e["index"], size, proof, root):
            fail("entry %d: inclusion proof does not lead to the checkpoint root" % e["index"])
        entries[e["index"]] = fields(raw)
    genesis = fields(one(entries.get(0, {}), 3)) if 0 in entries else fail("no genesis")
    if one(genesis, 1).decode() != origin or one(genesis, 2) != key: fail("genesis is not this log's")
    admins = {one(fields(k), 1).decode(): one(fields(k), 2) for k in genesis.get(3, [])}
    probes, down = {}, set()
    for index, entry in sorted(entries.items()):
        if 5 in entry:  # SignedCommand
            c = fields(one(entry, 5)); signer = one(c, 1).decode()
            if signer not in admins or not verify(admins[signer], b"uptime-ledger/v1/command\x00" + one(c, 2), one(c, 3)):
                fail("entry %d: command signature" % index)
            command = fields(one(c, 2))
            if 4 in command: r = fields(one(command, 4)); probes[one(r, 1).decode()] = one(r, 2)
            if 8 in command: k = fields(one(fields(one(command, 8)), 1)); admins[one(k, 1).decode()] = one(k, 2)
        elif 4 in entry:  # SignedObservation
            o = fields(one(entry, 4)); body = fields(one(o, 1)); probe = one(body, 1).decode()
            if probe not in probes or not verify(probes[probe], b"uptime-ledger/v1/observation\x00" + one(o, 1), one(o, 2)):
                fail("entry %d: observation signature" % index)
            if one(body, 2).decode() == b["service_id"] and one(body, 5, 0) == 2: down.add(index)
    for n, incident in enumerate(b["incidents"], 1):
        for index in incident["observations"]:
            if index not in down: fail("incident %d: entry %d is not a carried DOWN observation" % (n, index))
    print("OK: %s at tree size %d; %d entries included, every signature verified, %d incidents"
          % (origin, size, len(entries), len(b["incidents"])))

if __name__ == "__main__":
    try: main(sys.argv[1], sys.argv[2])
    except SystemExit: raise
    except Exception as error: fail("malformed file: %r" % error)
