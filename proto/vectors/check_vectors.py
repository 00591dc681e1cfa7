#!/usr/bin/env python3
"""Independent check of approvd's test vectors, written from PROTOCOL.md alone.

It rebuilds every signed message from its JSON fields using PROTOCOL.md's field tables,
re-derives keys from their seeds, reproduces deterministic signatures, recomputes the pairing
MAC and SAS, implements RFC 9180 HPKE (base mode, X25519/HKDF-SHA256/ChaCha20-Poly1305) by hand
to open and re-seal the context, and rebuilds the RFC 9421 signature base. Needs only the
`cryptography` package. Exit code 0 means every check passed.

Usage: python3 proto/vectors/check_vectors.py [VECTOR_DIR]
"""
import base64
import hashlib
import hmac
import json
import struct
import sys
import urllib.parse
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

DIR = Path(sys.argv[1]) if __name__ == "__main__" and len(sys.argv) > 1 else Path(__file__).resolve().parent
CHECKS = 0
FAILURES = 0


def check(condition, what):
    global CHECKS, FAILURES
    CHECKS += 1
    if not condition:
        FAILURES += 1
        print(f"FAIL: {what}")


def b64u(text):
    if "=" in text:
        raise ValueError("padded base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64u_encode(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# ---------------------------------------------------------------- PROTOCOL.md §3
def lp(data):
    return struct.pack(">I", len(data)) + data


def u64(value):
    return struct.pack(">Q", value)


def message(tag, fields):
    return b"approvd/v1/" + tag.encode() + b"\x00" + b"".join(lp(f) for f in fields)


def fields_for(tag, j, context_hash=None):
    """PROTOCOL.md §3.1-§3.6 field tables, in order."""
    if tag == "pair-claim":
        return [b64u(j["pairing_id"]), b64u(j["nas_id"]), b64u(j["device_id"]), b64u(j["sig_key"]),
                b64u(j["seal_key"]), b64u(j["device_info"]), u64(j["claimed_at"])]
    if tag == "pair-accept":
        return [b64u(j["pairing_id"]), b64u(j["nas_id"]), b64u(j["device_id"]), b64u(j["claim_hash"]),
                u64(j["accepted_at"])]
    if tag == "pair-confirm":
        return [b64u(j["pairing_id"]), b64u(j["nas_id"]), b64u(j["device_id"]), b64u(j["claim_hash"]),
                b64u(j["code_secret_hash"]), u64(j["confirmed_at"])]
    if tag == "challenge":
        return [b64u(j["cid"]), b64u(j["nas_id"]), b64u(j["device_id"]), u64(j["created"]), u64(j["expires"]),
                bytes([1 if j["number_matching"] else 0]), context_hash]
    if tag == "verdict":
        return [b64u(j["cid"]), b64u(j["nas_id"]), b64u(j["device_id"]), b64u(j["challenge_hash"]),
                j["decision"].encode(), j.get("number", "").encode(), bytes([1 if j["user_verified"] else 0]),
                u64(j["decided_at"])]
    if tag == "unpair":
        return [b64u(j["nas_id"]), b64u(j["device_id"]), u64(j["unpaired_at"])]
    if tag == "mute":
        return [b64u(j["nas_id"]), b64u(j["device_id"]), u64(j["until"]), u64(j["muted_at"])]
    raise ValueError(tag)


def seed(name):
    return hashlib.sha256(b"approvd test vector: " + name.encode()).digest()


def ed_public(secret):
    return Ed25519PrivateKey.from_private_bytes(secret).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


L = 2**252 + 27742317777372353535851937790883648493
SMALL_ORDER = {bytes.fromhex(h) for h in [  # PROTOCOL.md §2: weak keys
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
]}


def strict_verify(public, msg, sig):
    """Ed25519 with the strict rules of PROTOCOL.md §2."""
    if public in SMALL_ORDER or sig[:32] in SMALL_ORDER:
        return False
    if int.from_bytes(public, "little") & ((1 << 255) - 1) >= 2**255 - 19:
        return False
    if int.from_bytes(sig[32:], "little") >= L:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(sig, msg)
        return True
    except (InvalidSignature, ValueError):
        return False


# ---------------------------------------------------------------- RFC 9180 by hand (PROTOCOL.md §4)
def hkdf_extract(salt, ikm):
    return hmac.new(salt or b"\x00" * 32, ikm, hashlib.sha256).digest()


def hkdf_expand(prk, info, length):
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


KEM_SUITE = b"KEM" + struct.pack(">H", 0x0020)
HPKE_SUITE = b"HPKE" + struct.pack(">HHH", 0x0020, 0x0001, 0x0003)


def labeled_extract(suite, salt, label, ikm):
    return hkdf_extract(salt, b"HPKE-v1" + suite + label + ikm)


def labeled_expand(suite, prk, label, info, length):
    return hkdf_expand(prk, struct.pack(">H", length) + b"HPKE-v1" + suite + label + info, length)


def x_public(secret):
    return X25519PrivateKey.from_private_bytes(secret).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def dh(secret, public):
    return X25519PrivateKey.from_private_bytes(secret).exchange(X25519PublicKey.from_public_bytes(public))


def shared_secret(dh_out, enc, pk_r):
    prk = labeled_extract(KEM_SUITE, b"", b"eae_prk", dh_out)
    return labeled_expand(KEM_SUITE, prk, b"shared_secret", enc + pk_r, 32)


def key_schedule(secret, info):
    psk_id_hash = labeled_extract(HPKE_SUITE, b"", b"psk_id_hash", b"")
    info_hash = labeled_extract(HPKE_SUITE, b"", b"info_hash", info)
    context = b"\x00" + psk_id_hash + info_hash
    prk = labeled_extract(HPKE_SUITE, secret, b"secret", b"")
    return (labeled_expand(HPKE_SUITE, prk, b"key", context, 32),
            labeled_expand(HPKE_SUITE, prk, b"base_nonce", context, 12))


def hpke_open(sk_r, sealed, info, aad):
    enc, ct = sealed[:32], sealed[32:]
    key, nonce = key_schedule(shared_secret(dh(sk_r, enc), enc, x_public(sk_r)), info)
    return ChaCha20Poly1305(key).decrypt(nonce, ct, aad)


def hpke_seal(pk_r, ikm_e, info, aad, plaintext):
    dkp_prk = labeled_extract(KEM_SUITE, b"", b"dkp_prk", ikm_e)
    sk_e = labeled_expand(KEM_SUITE, dkp_prk, b"sk", b"", 32)
    enc = x_public(sk_e)
    key, nonce = key_schedule(shared_secret(dh(sk_e, pk_r), enc, pk_r), info)
    return enc + ChaCha20Poly1305(key).encrypt(nonce, plaintext, aad)


# ---------------------------------------------------------------- the checks
def check_signed_messages():
    data = json.loads((DIR / "signed-messages.json").read_text())
    keys = data["keys"]
    for name in ["N", "D_api", "D_sig"]:
        secret = seed(keys[name]["seed_name"])
        check(secret.hex() == keys[name]["secret_hex"], f"{name} seed")
        check(b64u_encode(ed_public(secret)) == keys[name]["public"], f"{name} public key")
    dx = seed(keys["Dx"]["seed_name"])
    check(b64u_encode(x_public(dx)) == keys["Dx"]["public"], "Dx public key")
    seal = json.loads((DIR / "context-seal.json").read_text())
    context_hash = hashlib.sha256(b64u(seal["sealed"])).digest()
    for m in data["messages"]:
        tag = m["tag"]
        built = message(tag, fields_for(tag, m["fields"], context_hash))
        check(built.hex() == m["message_hex"], f"{tag}: message bytes rebuilt from the field table")
        check(hashlib.sha256(built).hexdigest() == m["message_sha256_hex"], f"{tag}: hash")
        signer = seed(keys[m["signer"]]["seed_name"])
        sig = Ed25519PrivateKey.from_private_bytes(signer).sign(built)
        check(sig.hex() == m["signature_hex"], f"{tag}: deterministic signature reproduced")
        check(strict_verify(ed_public(signer), built, sig), f"{tag}: verifies")
    by_tag = {m["tag"]: m for m in data["messages"]}
    claim_hash = hashlib.sha256(bytes.fromhex(by_tag["pair-claim"]["message_hex"])).digest()
    check(b64u(by_tag["pair-accept"]["fields"]["claim_hash"]) == claim_hash, "accept commits to the claim")
    check(b64u(by_tag["pair-confirm"]["fields"]["claim_hash"]) == claim_hash, "confirm binds the claim")
    challenge_hash = hashlib.sha256(bytes.fromhex(by_tag["challenge"]["message_hex"])).digest()
    check(b64u(by_tag["verdict"]["fields"]["challenge_hash"]) == challenge_hash, "verdict binds the challenge")


def check_pairing():
    data = json.loads((DIR / "pairing.json").read_text())
    uri = data["uri"]
    check(uri.startswith("approvd://pair?"), "URI prefix")
    params = urllib.parse.parse_qs(uri.split("?", 1)[1], strict_parsing=True)
    check(all(len(v) == 1 for v in params.values()), "no duplicate parameters")
    params = {k: v[0] for k, v in params.items()}
    fields = data["fields"]
    check(sorted(params) == sorted(["v", "r", "p", "k", "n", "a", "u", "e"]), "exactly the eight parameters")
    check(params["v"] == "1" and params["r"] == fields["r"] and params["a"] == fields["a"], "v, r, a")
    check(params["u"] == fields["u"] and 0 < len(params["u"].encode()) <= 64, "u: the account")
    check(b64u(params["k"]).hex() == fields["k_hex"] and params["p"] == fields["p"], "k, p")
    check(params["n"] == fields["n"] and int(params["e"]) == fields["e"] > data["now"], "n, e")
    claim = data["claim"]
    claim_bytes = message("pair-claim", fields_for("pair-claim", claim))
    check(claim_bytes.hex() == data["claim_message_hex"], "claim bytes")
    k = bytes.fromhex(fields["k_hex"])
    k_mac, k_sas, k_info = subkey(k, b"claim-mac"), subkey(k, b"sas"), subkey(k, b"device-info")
    check(k_mac.hex() == data["k_mac_hex"] and k_sas.hex() == data["k_sas_hex"]
          and k_info.hex() == data["k_info_hex"], "subkeys of k (HKDF)")
    k_relay = subkey(k, b"relay-claim")
    check(k_relay.hex() == data["k_relay_hex"], "relay-claim subkey k_relay (HKDF)")
    check(b64u_encode(hashlib.sha256(k_relay).digest()) == data["claim_verifier"],
          "claim_verifier = SHA-256(k_relay)")
    # The device's name and platform, sealed to the NAS under k_info (PROTOCOL.md §3.1).
    aad = b"approvd/v1/device-info\x00" + lp(b64u(claim["pairing_id"])) + lp(b64u(claim["device_id"]))
    check(aad.hex() == data["device_info_aad_hex"], "device info aad")
    sealed_info = b64u(claim["device_info"])
    info = ChaCha20Poly1305(k_info).decrypt(sealed_info[:12], sealed_info[12:], aad)
    check(len(info) == 128 and json.loads(info) == data["device_info"], "device info opens with k_info")
    check(ChaCha20Poly1305(k_info).encrypt(sealed_info[:12], info, aad) == sealed_info[12:],
          "device info re-seals byte for byte")
    mac = hmac.new(k_mac, claim_bytes, hashlib.sha256).digest()
    check(mac.hex() == data["mac_hex"], "claim MAC under k_mac")
    sas_input = b"approvd/v1/sas\x00" + b"".join(
        lp(b64u(claim[f])) for f in ["nas_id", "device_id", "sig_key", "seal_key"])
    check(sas_input.hex() == data["sas_input_hex"], "SAS input")
    h = hmac.new(k_sas, sas_input, hashlib.sha256).digest()
    check("%06d" % (int.from_bytes(h[:8], "big") % 1_000_000) == data["sas"], "SAS under k_sas")
    # The offline-code secret: random, sealed to Dx, bound to the claim (PROTOCOL.md §5.5).
    b = data["code_binding"]
    check(b64u(b["claim_hash"]) == hashlib.sha256(claim_bytes).digest(), "code secret bound to the claim")
    info = b"approvd/v1/code-secret-info\x00" + lp(b64u(b["pairing_id"])) + lp(b64u(b["device_id"]))
    aad = b"approvd/v1/code-secret-aad\x00" + lp(b64u(b["claim_hash"])) + lp(b64u(b["nas_id"]))
    check(info.hex() == data["code_info_hex"] and aad.hex() == data["code_aad_hex"], "code secret info, aad")
    dx = seed("device Dx")
    sealed = b64u(data["code_secret_sealed"])
    secret = hpke_open(dx, sealed, info, aad)
    check(secret.hex() == data["code_secret_hex"] and len(sealed) == 80, "code secret opens with Dx")
    check(hpke_seal(x_public(dx), bytes.fromhex(data["code_ikmE_hex"]), info, aad, secret) == sealed,
          "re-sealing the code secret with code_ikmE reproduces it")
    check(hashlib.sha256(sealed).hexdigest() == data["code_secret_hash_hex"], "code secret hash")
    confirm = {m["tag"]: m for m in json.loads((DIR / "signed-messages.json").read_text())["messages"]}["pair-confirm"]
    check(b64u(confirm["fields"]["code_secret_hash"]).hex() == data["code_secret_hash_hex"],
          "pair-confirm signs the sealed code secret's hash")
    mac = hmac.new(secret, struct.pack(">Q", data["totp_time"] // 30), hashlib.sha256).digest()
    offset = mac[-1] & 0x0F
    code = (int.from_bytes(mac[offset:offset + 4], "big") & 0x7FFFFFFF) % 1_000_000
    check("%06d" % code == data["totp_code"], "TOTP code (RFC 6238, HMAC-SHA256)")


def subkey(k, label):
    return hkdf_expand(hkdf_extract(b"approvd/v1/pairing", k), label, 32)


def check_context():
    data = json.loads((DIR / "context-seal.json").read_text())
    b = data["binding"]
    info = b"approvd/v1/context-info\x00" + lp(b64u(b["cid"])) + lp(b64u(b["device_id"]))
    aad = (b"approvd/v1/context-aad\x00" + lp(b64u(b["cid"])) + lp(b64u(b["nas_id"])) + lp(b64u(b["device_id"]))
           + lp(u64(b["created"])) + lp(u64(b["expires"])) + lp(bytes([1 if b["number_matching"] else 0])))
    check(info.hex() == data["info_hex"], "HPKE info")
    check(aad.hex() == data["aad_hex"], "HPKE aad")
    sk_r = bytes.fromhex(data["recipient_secret_hex"])
    check(b64u_encode(x_public(sk_r)) == data["recipient_public"], "recipient public key")
    sealed = b64u(data["sealed"])
    plaintext = hpke_open(sk_r, sealed, info, aad)
    check(len(plaintext) % 256 == 0 and len(plaintext) == data["plaintext_len"], "padded to 256 bytes")
    check(json.loads(plaintext) == data["context"], "opened context equals the published one")
    resealed = hpke_seal(x_public(sk_r), bytes.fromhex(data["ikmE_hex"]), info, aad, plaintext)
    check(resealed == sealed, "re-sealing with ikmE reproduces the blob")
    check(hashlib.sha256(sealed).hexdigest() == data["context_hash_hex"], "context hash")
    try:
        hpke_open(sk_r, sealed, info, aad[:-1] + b"\x00")
        check(False, "changed aad must not open")
    except Exception:
        check(True, "changed aad does not open")


def component_value(name, case):
    """RFC 9421 §2: the value of one covered component of the request described by `case`."""
    path = case["path"] or "/"
    query = "?" + case["query"] if case["query"] else ""
    scheme = (case.get("scheme") or "").lower()
    authority = (case.get("authority") or "").lower()
    default_port = ":443" if scheme == "https" else ":80"
    if authority.endswith(default_port):
        authority = authority[:-len(default_port)]
    derived = {"@method": case["method"], "@path": path, "@query": "?" + case["query"],
               "@scheme": scheme, "@authority": authority, "@request-target": path + query,
               "@target-uri": f"{scheme}://{authority}{path}{query}"}
    if name in derived:
        return derived[name]
    if name == "content-digest":
        return case["content_digest"]
    lines = [v.strip(" \t") for k, v in case.get("fields", {}).items() if k.lower() == name]
    return ", ".join(lines)


def check_http_signatures():
    data = json.loads((DIR / "http-signature.json").read_text())
    for case in data["cases"]:
        label, inner = case["signature_input"].split("=", 1)
        components = inner[1:inner.index(")")].split(" ")
        lines = [f'{component}: {component_value(component.strip(chr(34)), case)}' for component in components]
        lines.append(f'"@signature-params": {inner}')
        base = "\n".join(lines)
        check(base == case["signature_base"], f"{case['name']}: signature base")
        if case["body"] is not None:
            digest = "sha-256=:" + base64.b64encode(hashlib.sha256(case["body"].encode()).digest()).decode() + ":"
            check(digest == case["content_digest"], f"{case['name']}: Content-Digest")
        sig_label, sig_value = case["signature"].split("=", 1)
        sig = base64.b64decode(sig_value.strip(":"))
        public = ed_public(bytes.fromhex(case["signer_secret_hex"]))
        check(sig_label == label, f"{case['name']}: label")
        check(f'keyid="{b64u_encode(public)}"' in inner, f"{case['name']}: keyid")
        check(strict_verify(public, base.encode(), sig), f"{case['name']}: signature verifies")


def check_negative():
    data = json.loads((DIR / "negative.json").read_text())
    for case in data["cases"]:
        public = b64u(case["public"]) if "public" in case else bytes.fromhex(case["public_hex"])
        accepted = strict_verify(public, bytes.fromhex(case["message_hex"]), bytes.fromhex(case["signature_hex"]))
        check(not accepted, f"negative: {case['name']} must be rejected")


def main():
    for step in [check_signed_messages, check_pairing, check_context, check_http_signatures, check_negative]:
        step()
    print(f"check_vectors: {CHECKS - FAILURES} passed, {FAILURES} failed")
    sys.exit(1 if FAILURES else 0)


if __name__ == "__main__":
    main()
