#!/usr/bin/env python3
"""A stand-in for a browser and its push service (RFC 8030), for approvd's Web Push tests.

It checks what a real push service checks, with implementations that are not approvd's: the
VAPID token (RFC 8292) is verified with `cryptography` (ES256 over the JWT, `aud` = this
origin, `exp` in the future and at most 24 h ahead, `sub` a mailto: or https: URL), and the
body is decrypted as the browser would (RFC 8291, aes128gcm) with `http_ece`.

  POST /subscriptions {"answers": [410, ...], "location": URL}
                                                -> a new subscription (PushSubscription JSON);
       the pushes to it are answered with these statuses in turn (a 3xx with `Location: URL`),
       then 201
  POST /push/<id>                               -> a push; verified, decrypted, recorded
  GET  /received                                -> every push received, as JSON
  GET  /connections                             -> how many TCP connections were accepted

Usage: mock_push_service.py CERT KEY   (prints "listening on PORT", serves https on localhost)
"""

import base64
import http.server
import json
import os
import re
import ssl
import sys
import threading
import time

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

LOCK = threading.Lock()
SUBSCRIPTIONS = {}  # id -> {"private": key, "auth": bytes, "answers": [status]}
RECEIVED = []
CONNECTIONS = [0]


def b64decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64encode(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def check_vapid(header, origin):
    """The claims of a valid `vapid t=..., k=...` header, or raise ValueError."""
    match = re.fullmatch(r"vapid t=([A-Za-z0-9_.-]+), *k=([A-Za-z0-9_-]+)", header or "")
    if not match:
        raise ValueError("no vapid authorization")
    token, key = match.groups()
    head, payload, signature = token.split(".")
    if json.loads(b64decode(head)).get("alg") != "ES256":
        raise ValueError("not ES256")
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64decode(key))
    raw = b64decode(signature)
    if len(raw) != 64:
        raise ValueError("signature is not r||s")
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        public.verify(der, f"{head}.{payload}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise ValueError("bad signature")
    claims = json.loads(b64decode(payload))
    now = time.time()
    if claims.get("aud") != origin:
        raise ValueError(f"aud {claims.get('aud')!r} is not {origin!r}")
    if not (now < claims.get("exp", 0) <= now + 24 * 3600):
        raise ValueError("exp out of range")
    if not re.match(r"^(mailto:|https://)", claims.get("sub", "")):
        raise ValueError("sub is not mailto: or https:")
    return {"aud": claims["aud"], "sub": claims["sub"], "exp": claims["exp"], "k": key}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body=b"", headers=()):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def do_GET(self):
        with LOCK:
            if self.path == "/received":
                return self.answer(200, json.dumps(RECEIVED).encode())
            if self.path == "/connections":
                return self.answer(200, json.dumps(CONNECTIONS[0]).encode())
        self.answer(404)

    def do_POST(self):
        body = self.body()
        if self.path == "/subscriptions":
            asked = json.loads(body or b"{}")
            answers = asked.get("answers", [])
            private = ec.generate_private_key(ec.SECP256R1())
            auth = os.urandom(16)
            sub_id = b64encode(os.urandom(12))
            with LOCK:
                SUBSCRIPTIONS[sub_id] = {
                    "private": private,
                    "auth": auth,
                    "answers": list(answers),
                    "location": asked.get("location"),
                }
            public = private.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
            subscription = {
                "endpoint": f"https://localhost:{self.server.server_port}/push/{sub_id}",
                "keys": {"p256dh": b64encode(public), "auth": b64encode(auth)},
            }
            return self.answer(201, json.dumps(subscription).encode())
        match = re.fullmatch(r"/push/([A-Za-z0-9_-]+)", self.path)
        if not match or match.group(1) not in SUBSCRIPTIONS:
            return self.answer(404)
        sub_id = match.group(1)
        record = {
            "id": sub_id,
            "ttl": self.headers.get("TTL"),
            "urgency": self.headers.get("Urgency"),
            "topic": self.headers.get("Topic"),
            "content_encoding": self.headers.get("Content-Encoding"),
            "errors": [],
        }
        origin = f"https://localhost:{self.server.server_port}"
        try:
            record["vapid"] = check_vapid(self.headers.get("Authorization"), origin)
        except ValueError as error:
            record["errors"].append(f"vapid: {error}")
        subscription = SUBSCRIPTIONS[sub_id]
        try:
            plaintext = http_ece.decrypt(
                body,
                private_key=subscription["private"],
                auth_secret=subscription["auth"],
                version="aes128gcm",
            )
            record["plaintext"] = plaintext.decode()
        except Exception as error:  # noqa: BLE001 - any failure is the sender's fault
            record["errors"].append(f"decrypt: {error}")
        with LOCK:
            status = subscription["answers"].pop(0) if subscription["answers"] else 201
            if record["errors"]:
                status = 403 if any(e.startswith("vapid") for e in record["errors"]) else 400
            record["status"] = status
            RECEIVED.append(record)
        headers = [("Retry-After", "1")] if status == 429 else []
        if 300 <= status < 400 and subscription["location"]:
            headers.append(("Location", subscription["location"]))
        self.answer(status, headers=headers)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def get_request(self):
        connection = super().get_request()
        with LOCK:
            CONNECTIONS[0] += 1
        return connection


def main():
    cert, key = sys.argv[1], sys.argv[2]
    server = Server(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"listening on {server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
