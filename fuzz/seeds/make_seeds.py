#!/usr/bin/env python3
"""Writes the fuzz targets' seed inputs (hand-encoded protobuf, checkpoint notes, probe
configs) into seeds/<target>/. Run from anywhere; the output is committed."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field(number, wire, payload):
    key = varint(number << 3 | wire)
    if wire == 0:
        return key + varint(payload)
    if wire == 1:
        return key + payload
    return key + varint(len(payload)) + payload


def msg(number, payload):
    return field(number, 2, payload)


def s(number, text):
    return field(number, 2, text.encode())


def u(number, value):
    return field(number, 0, value)


def timestamp(number, seconds, nanos=0):
    return msg(number, u(1, seconds) + (u(2, nanos) if nanos else b""))


observation = (
    s(1, "p1") + s(2, "svc") + u(3, 7) + timestamp(4, 1_795_737_600, 123_000_000)
    + u(5, 2) + u(6, 42) + s(7, "HTTP 503")
)
signed = msg(1, observation) + msg(2, bytes(64))
submit = msg(1, signed) + msg(1, msg(1, observation[:10]) + msg(2, bytes(3)))
stream = msg(1, signed)
define = u(1, 3) + timestamp(2, 1_795_737_600) + msg(3, msg(1,
    s(1, "svc2") + s(2, "Passport") + s(3, "Immigration")
    + field(4, 1, struct.pack("<d", 0.995)) + msg(5, u(1, 4) + u(2, 2)) + msg(6, u(1, 90))))
register = u(1, 4) + timestamp(2, 1_795_737_600) + msg(4, s(1, "p2") + msg(2, bytes(range(32))) + s(3, "Nairobi"))
revoke = u(1, 5) + timestamp(2, 1_795_737_600) + msg(5, s(1, "p1") + s(2, "stolen"))
schedule = u(1, 6) + timestamp(2, 1_795_737_600) + msg(6,
    s(1, "m1") + s(2, "svc") + timestamp(3, 1_795_740_000) + timestamp(4, 1_795_750_000) + s(5, "upgrade"))
cancel = u(1, 7) + timestamp(2, 1_795_737_600) + msg(7, s(1, "m1"))
apply = msg(1, s(1, "admin") + msg(2, revoke) + msg(3, bytes(64)))
entry_observation = u(1, 9) + timestamp(2, 1_795_737_601) + msg(4, signed)
entry_command = u(1, 10) + timestamp(2, 1_795_737_601) + msg(5, s(1, "admin") + msg(2, cancel) + msg(3, bytes(64)))
genesis = u(1, 0) + timestamp(2, 1_795_737_600) + msg(3,
    s(1, "example.org/log") + msg(2, bytes(32)) + msg(3, s(1, "admin") + msg(2, bytes(32)))
    + msg(4, u(1, 3600)) + msg(5, u(1, 30)))

seeds = {
    "ingest": {
        "observation": observation, "submit": submit, "stream": stream, "define": define,
        "register": register, "revoke": revoke, "schedule": schedule, "cancel": cancel,
        "apply": apply, "entry-observation": entry_observation,
        "entry-command": entry_command, "entry-genesis": genesis,
    },
    "checkpoint": {
        "note": (
            "fuzz.example/log\n1234567\nTdCOHLvvsrgWyedNY8qDklYm81l6yIfekjqfWBIYSnQ=\n\n"
            "\u2014 fuzz.example/log IT2HTH8o9q606x2rzWpZyFBbH5ygQ3LHrGndBTtZ0VHYEpkXzXa+eFoAxYyTmMXLw2MFemee9E72DzFzxN5ZyNO9+wI=\n"
        ).encode(),
        "body-with-extension": b"example.com/log\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\nextension line\n",
        "verifier": b"uptime-ledger.local/log+1a2b3c4d+AeRtqgoxRxcN0UyE5tdLy7Kkt2OnvP8Tf2mTNEPVGG2S",
    },
    "probe_config": {
        "full": b'''probe_id = "nbo-1"
key_file = "probe.pem"
ledger = "http://127.0.0.1:50051"
spool_dir = "probe-spool"
spool_max_observations = 100000

[[check]]
service_id = "ecitizen.passport"
kind = "http"
url = "https://passport.example.go.ke/health"
interval = "30s"
timeout = "5s"
expect_status = [200, 204]
body_contains = "ok"
max_latency = "3s"
follow_redirects = false

[[check]]
service_id = "ecitizen.portal"
kind = "tcp"
address = "portal.example.go.ke:443"
interval = "30s"
timeout = "5s"
max_latency = "1s"
''',
    },
}

for target, files in seeds.items():
    os.makedirs(os.path.join(HERE, target), exist_ok=True)
    for name, data in files.items():
        with open(os.path.join(HERE, target, name), "wb") as f:
            f.write(data)
