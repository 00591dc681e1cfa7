#!/usr/bin/env python3
"""A whole approvd flow against a real relay, every request signed by a stock RFC 9421 library.

PROTOCOL.md §7 promises that a widely used HTTP Message Signatures implementation works with
configuration only. This script is that promise kept: a NAS and a phone written in Python from
PROTOCOL.md (the message, MAC, SAS and HPKE code is check_vectors.py's), whose HTTP requests are
signed by `requests-http-signature` (on `http-message-signatures`) configured with the profile's
parameters. The library covers what it covers by default on top — `date`, `@authority`,
`@target-uri`, `content-digest` even for an empty body — and orders the parameters its own way;
the relay must verify all of it. It pairs, sends a challenge with a sealed context, approves it
with number matching, and checks on each side what PROTOCOL.md §11 says that side verifies.
Then it checks that what the library covers is really checked: a replay, a stale `Date` and a
changed `Host` are refused.

Usage: python3 proto/vectors/check_library_flow.py [PATH_TO_APPROVD_BINARY]
Needs: cryptography, requests-http-signature==2.0.0, http-message-signatures==3.0.0.
"""
import datetime
import email.utils
import hashlib
import hmac
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from requests_http_signature import HTTPSignatureAuth, algorithms

from check_vectors import (b64u, b64u_encode, check, ed_public, fields_for, hpke_open, hpke_seal, lp,
                           message, strict_verify, subkey, u64, x_public)
import check_vectors

ROOT = Path(__file__).resolve().parents[2]
BINARY = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "target" / "debug" / "approvd"


class Party:
    """One signing key and the requests session that signs with it (PROTOCOL.md §7)."""

    def __init__(self, base_url, name):
        self.secret = secrets.token_bytes(32)
        self.public = ed_public(self.secret)
        self.id = b64u_encode(self.public)
        pem = Ed25519PrivateKey.from_private_bytes(self.secret).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        # Configuration only: the profile's components and parameters, nothing subclassed.
        self.auth = HTTPSignatureAuth(
            signature_algorithm=algorithms.ED25519, key=pem, key_id=self.id, label=name,
            covered_component_ids=("@method", "@authority", "@target-uri", "@path", "@query"),
            tag="approvd/v1", use_nonce=True, expires_in=datetime.timedelta(seconds=60))
        self.base_url = base_url

    def request(self, method, path, body=None, headers=None):
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        all_headers = {"Content-Type": "application/json"} if data is not None else {}
        all_headers.update(headers or {})
        return requests.request(method, self.base_url + path, data=data, headers=all_headers,
                                auth=self.auth, timeout=30)

    def sign(self, msg):
        return Ed25519PrivateKey.from_private_bytes(self.secret).sign(msg)


def expect(response, status, what):
    ok = response.status_code == status
    check(ok, f"{what}: HTTP {response.status_code} (expected {status}): {response.text[:300]}")
    return response.json() if ok and response.content else None


def start_relay(data_dir):
    relay = subprocess.Popen(
        [str(BINARY), "serve", "--bind", "127.0.0.1:0", "--data-dir", data_dir],
        stdout=subprocess.PIPE, stderr=open(os.path.join(data_dir, "relay.log"), "w"), text=True,
        env={**os.environ, "APPROVD_LOG": "warn"})
    line = []
    reader = threading.Thread(target=lambda: line.append(relay.stdout.readline()), daemon=True)
    reader.start()
    reader.join(20)
    if not line or not line[0].startswith("approvd listening on "):
        relay.kill()
        sys.exit(f"approvd did not start: {line!r}; see {data_dir}/relay.log")
    return relay, line[0].strip().removeprefix("approvd listening on ")


def sas(k, claim):
    sas_input = b"approvd/v1/sas\x00" + b"".join(
        lp(b64u(claim[f])) for f in ["nas_id", "device_id", "sig_key", "seal_key"])
    h = hmac.new(subkey(k, b"sas"), sas_input, hashlib.sha256).digest()
    return "%06d" % (int.from_bytes(h[:8], "big") % 1_000_000)


def context_bytes(binding):
    info = b"approvd/v1/context-info\x00" + lp(b64u(binding["cid"])) + lp(b64u(binding["device_id"]))
    aad = (b"approvd/v1/context-aad\x00" + lp(b64u(binding["cid"])) + lp(b64u(binding["nas_id"]))
           + lp(b64u(binding["device_id"])) + lp(u64(binding["created"])) + lp(u64(binding["expires"]))
           + lp(bytes([1 if binding["number_matching"] else 0])))
    return info, aad


def flow(base_url):
    nas = Party(base_url, "nas")
    phone = Party(base_url, "phone")       # D_api
    phone_sig = secrets.token_bytes(32)    # D_sig
    phone_seal = X25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())  # Dx
    now = int(time.time())

    # §5.1 step 1: the NAS registers a pairing slot.
    pairing_id, k = b64u_encode(secrets.token_bytes(16)), secrets.token_bytes(32)
    k_relay = subkey(k, b"relay-claim")  # §5.1a: the relay checks claims against its hash
    slot = expect(nas.request("POST", "/v1/pairings", {
        "pairing_id": pairing_id, "ttl_secs": 120,
        "claim_verifier": b64u_encode(hashlib.sha256(k_relay).digest())}),
        201, "NAS registers a pairing slot")
    if slot is None:
        return

    # Step 2: the phone claims it (it pinned N from the QR code).
    info = json.dumps({"name": "Python phone", "platform": "android"}, separators=(",", ":")).encode()
    info_aad = b"approvd/v1/device-info\x00" + lp(b64u(pairing_id)) + lp(phone.public)
    nonce = secrets.token_bytes(12)
    device_info = nonce + ChaCha20Poly1305(subkey(k, b"device-info")).encrypt(
        nonce, info + b" " * (128 - len(info)), info_aad)
    claim = {"pairing_id": pairing_id, "nas_id": nas.id, "device_id": phone.id,
             "sig_key": b64u_encode(ed_public(phone_sig)), "seal_key": b64u_encode(x_public(phone_seal)),
             "device_info": b64u_encode(device_info), "claimed_at": now}
    claim_bytes = message("pair-claim", fields_for("pair-claim", claim))
    expect(phone.request("POST", f"/v1/pairings/{pairing_id}/claim", {
        "claim": claim, "claim_key": b64u_encode(bytes(32)), "mac": b64u_encode(bytes(32)),
        "sig": b64u_encode(Ed25519PrivateKey.from_private_bytes(phone_sig).sign(claim_bytes))}),
        403, "a claim without k_relay is refused (and consumes nothing)")
    claimed = expect(phone.request("POST", f"/v1/pairings/{pairing_id}/claim", {
        "claim": claim, "claim_key": b64u_encode(k_relay), "mac": b64u_encode(hmac.new(subkey(k, b"claim-mac"), claim_bytes, hashlib.sha256).digest()),
        "sig": b64u_encode(Ed25519PrivateKey.from_private_bytes(phone_sig).sign(claim_bytes))}),
        200, "phone claims the slot")

    # Step 4: the NAS fetches the claim and checks MAC, signature and that it names its slot.
    got = expect(nas.request("GET", f"/v1/pairings/{pairing_id}/claim?wait=5"), 200, "NAS fetches the claim")
    if claimed is None or got is None:
        return
    got_bytes = message("pair-claim", fields_for("pair-claim", got["claim"]))
    check(hmac.compare_digest(hmac.new(subkey(k, b"claim-mac"), got_bytes, hashlib.sha256).digest(),
                              b64u(got["mac"])),
          "NAS: claim MAC verifies under k")
    check(strict_verify(b64u(got["claim"]["sig_key"]), got_bytes, b64u(got["sig"])), "NAS: claim signature")
    check(got["claim"]["nas_id"] == nas.id and got["claim"]["pairing_id"] == pairing_id, "NAS: its slot")
    sealed_info = b64u(got["claim"]["device_info"])
    opened_info = ChaCha20Poly1305(subkey(k, b"device-info")).decrypt(sealed_info[:12], sealed_info[12:], info_aad)
    check(json.loads(opened_info) == {"name": "Python phone", "platform": "android"},
          "NAS: the device's name opens with k (the relay never read it)")
    push_handle = got["push_handle"]
    check(push_handle == claimed["push_handle"], "NAS and phone hold the same push handle")
    claim_hash = b64u_encode(hashlib.sha256(got_bytes).digest())

    # The NAS commits to this claim before any code is shown (§5.1 step 4).
    accept = {"pairing_id": pairing_id, "nas_id": nas.id, "device_id": phone.id, "claim_hash": claim_hash,
              "accepted_at": now}
    accept_bytes = message("pair-accept", fields_for("pair-accept", accept))
    expect(nas.request("POST", f"/v1/pairings/{pairing_id}/accept",
                       {"accept": accept, "sig": b64u_encode(nas.sign(accept_bytes))}),
           204, "NAS accepts the claim")
    acceptance = expect(phone.request("GET", f"/v1/pairings/{pairing_id}/acceptance?wait=5"),
                        200, "phone fetches the acceptance")
    if acceptance is None:
        return
    seen = message("pair-accept", fields_for("pair-accept", acceptance["accept"]))
    check(strict_verify(nas.public, seen, b64u(acceptance["sig"])), "phone: acceptance signed by pinned N")
    check(b64u(acceptance["accept"]["claim_hash"]) == hashlib.sha256(claim_bytes).digest(),
          "phone: the NAS committed to the claim it sent, so it shows its code")
    typed = sas(k, claim)  # the user reads the phone's code and types it on the NAS
    check(hmac.compare_digest(typed, sas(k, got["claim"])), "NAS: the typed code matches")

    # Step 5: a fresh offline-code secret sealed to Dx, its hash signed in pair-confirm.
    code_secret = secrets.token_bytes(32)
    info = b"approvd/v1/code-secret-info\x00" + lp(b64u(pairing_id)) + lp(b64u(phone.id))
    aad = b"approvd/v1/code-secret-aad\x00" + lp(b64u(claim_hash)) + lp(nas.public)
    sealed_secret = hpke_seal(b64u(got["claim"]["seal_key"]), secrets.token_bytes(32), info, aad, code_secret)
    confirm = {"pairing_id": pairing_id, "nas_id": nas.id, "device_id": phone.id, "claim_hash": claim_hash,
               "code_secret_hash": b64u_encode(hashlib.sha256(sealed_secret).digest()), "confirmed_at": now}
    confirm_bytes = message("pair-confirm", fields_for("pair-confirm", confirm))
    expect(nas.request("POST", f"/v1/pairings/{pairing_id}/confirm",
                       {"confirm": confirm, "sig": b64u_encode(nas.sign(confirm_bytes)),
                        "code_secret": b64u_encode(sealed_secret)}),
           204, "NAS confirms the pairing")
    confirmation = expect(phone.request("GET", f"/v1/pairings/{pairing_id}/confirmation?wait=5"),
                          200, "phone fetches the confirmation")
    if confirmation is None:
        return
    seen = message("pair-confirm", fields_for("pair-confirm", confirmation["confirm"]))
    check(strict_verify(nas.public, seen, b64u(confirmation["sig"])), "phone: confirmation signed by pinned N")
    check(b64u(confirmation["confirm"]["claim_hash"]) == hashlib.sha256(claim_bytes).digest(),
          "phone: the confirmation names the claim it sent")
    got_secret = b64u(confirmation["code_secret"])
    check(b64u(confirmation["confirm"]["code_secret_hash"]) == hashlib.sha256(got_secret).digest(),
          "phone: the sealed code secret is the one the NAS signed")
    check(hpke_open(phone_seal, got_secret, info, aad) == code_secret, "phone: the code secret opens with Dx")

    # §8.2: the NAS asks for approval, sealing the context to Dx (§4).
    cid = b64u_encode(secrets.token_bytes(16))
    binding = {"cid": cid, "nas_id": nas.id, "device_id": phone.id, "created": now, "expires": now + 60,
               "number_matching": True}
    context = {"user": "alice", "service": "SSH", "nas_label": "python-nas", "client_ip": "192.0.2.7",
               "kind": "login", "time": now}
    text = json.dumps(context, separators=(",", ":")).encode()
    plaintext = text + b" " * (-len(text) % 256)
    info, aad = context_bytes(binding)
    sealed = hpke_seal(x_public(phone_seal), secrets.token_bytes(32), info, aad, plaintext)
    challenge_bytes = message("challenge", fields_for("challenge", binding, hashlib.sha256(sealed).digest()))
    created = expect(nas.request("POST", "/v1/challenges", {
        "cid": cid, "created": now, "expires": now + 60, "number_matching": True,
        "targets": [{"device_id": phone.id, "push_handle": push_handle, "sealed": b64u_encode(sealed),
                     "sig": b64u_encode(nas.sign(challenge_bytes))}]}), 201, "NAS creates a challenge")
    if created is not None:
        check(created["deliveries"] == [{"device_id": phone.id, "delivery": "inbox_only"}],
              f"a phone paired without push is reached through its inbox: {created['deliveries']}")

    # The phone finds it in its inbox, verifies it under N and opens the context.
    inbox = expect(phone.request("GET", "/v1/inbox?wait=5"), 200, "phone reads its inbox")
    if inbox is None:
        return
    entry = inbox["entries"][0]
    seen_binding = {**entry, "device_id": phone.id}
    seen_sealed = b64u(entry["sealed"])
    seen_bytes = message("challenge", fields_for("challenge", seen_binding, hashlib.sha256(seen_sealed).digest()))
    check(strict_verify(nas.public, seen_bytes, b64u(entry["sig"])), "phone: challenge signed by N")
    opened = hpke_open(phone_seal, seen_sealed, *context_bytes(seen_binding))
    check(json.loads(opened) == context, "phone: the sealed context opens to what the NAS sent")

    # The user types the number shown on the login page and approves.
    verdict = {"cid": cid, "nas_id": nas.id, "device_id": phone.id,
               "challenge_hash": b64u_encode(hashlib.sha256(seen_bytes).digest()), "decision": "approve",
               "number": "427", "user_verified": False, "decided_at": int(time.time())}
    verdict_bytes = message("verdict", fields_for("verdict", verdict))
    expect(phone.request("POST", f"/v1/challenges/{cid}/verdict", {
        "verdict": verdict, "sig": b64u_encode(Ed25519PrivateKey.from_private_bytes(phone_sig).sign(verdict_bytes))}),
        204, "phone approves")

    # The NAS verifies the verdict under the D_sig it recorded at pairing (§11).
    answer = expect(nas.request("GET", f"/v1/challenges/{cid}/verdict?wait=5"), 200, "NAS long-polls the verdict")
    if answer is None:
        return
    answer_bytes = message("verdict", fields_for("verdict", answer["verdict"]))
    check(strict_verify(b64u(got["claim"]["sig_key"]), answer_bytes, b64u(answer["sig"])),
          "NAS: verdict signed by the recorded D_sig")
    check(b64u(answer["verdict"]["challenge_hash"]) == hashlib.sha256(challenge_bytes).digest(),
          "NAS: the verdict answers the challenge it signed")
    check(answer["verdict"]["decision"] == "approve" and answer["verdict"]["number"] == "427", "NAS: approved, 427")

    refusals(nas)


def refusals(nas):
    """What the library covers beyond the profile is checked, not ignored."""
    sent = nas.request("GET", "/v1/mailbox")
    check(sent.status_code in (200, 204), f"mailbox read: {sent.status_code}")
    replay = requests.get(sent.request.url, headers=dict(sent.request.headers), timeout=30)
    problem = expect(replay, 401, "a replayed request is refused")
    check(problem is not None and problem["type"].endswith(":replayed-nonce"), f"replay: {problem}")

    stale = email.utils.formatdate(time.time() - 600, usegmt=True)
    problem = expect(nas.request("GET", "/v1/mailbox", headers={"Date": stale}), 401,
                     "a covered Date ten minutes old is refused")
    check(problem is not None and problem.get("field") == "Date", f"stale Date names the field: {problem}")

    prepared = requests.Request("GET", nas.base_url + "/v1/mailbox", auth=nas.auth).prepare()
    prepared.headers["Host"] = "elsewhere.example"
    problem = expect(requests.Session().send(prepared, timeout=30), 401,
                     "a covered @authority that differs from the Host the relay got is refused")
    check(problem is not None and "does not verify" in problem.get("detail", ""), f"changed Host: {problem}")


def main():
    if not BINARY.exists():
        sys.exit(f"{BINARY} not found: run `cargo build --bins` first")
    with tempfile.TemporaryDirectory(prefix="approvd-flow-") as data_dir:
        relay, base_url = start_relay(data_dir)
        try:
            flow(base_url)
        finally:
            relay.terminate()
            relay.wait(10)
        if check_vectors.FAILURES:
            print(Path(data_dir, "relay.log").read_text()[-4000:])
    print(f"check_library_flow: {check_vectors.CHECKS - check_vectors.FAILURES} passed, "
          f"{check_vectors.FAILURES} failed")
    sys.exit(1 if check_vectors.FAILURES else 0)


if __name__ == "__main__":
    main()
