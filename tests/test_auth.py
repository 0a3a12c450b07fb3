"""Token verification (server/auth.py): HS256 secrets and their rotation, RS256
and ES256 public keys from PEM and JWKS files, the algorithm decided by the key,
``kid``, ``iss``/``aud``, and the cache of verified tokens.

The JWKS URL is tests/test_tokens_jwks.py's; a real server, tests/test_tokens_e2e.py's.
The helpers here (keys, signed and forged tokens) serve all three.
"""

from __future__ import annotations

import base64
import datetime
import functools
import hashlib
import hmac
import json
import math
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from server.auth import Identity, TokenError, Tokens, UnknownKey, issue, load_key_file
from tests.timing import seconds

SECRET = "test-secret-" + "x" * 32
OLD_SECRET = "old-secret-" + "o" * 32
NEW_SECRET = "new-secret-" + "n" * 32

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


# Keys and tokens, for the tests of every file --------------------------------


@functools.cache
def rsa_key(name: str = "rsa") -> rsa.RSAPrivateKey:
    """A 2048-bit RSA key, one per ``name`` (made once: they take a while)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@functools.cache
def ec_key(name: str = "ec") -> ec.EllipticCurvePrivateKey:
    """A P-256 key, one per ``name``."""
    return ec.generate_private_key(ec.SECP256R1())


def public_pem(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def jwk(key: PrivateKey, kid: str | None, **extra: str) -> dict[str, Any]:
    """The public JWK of ``key``, as an identity provider publishes it."""
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        fields = RSAAlgorithm.to_jwk(public, as_dict=True)
        algorithm = "RS256"
    else:
        fields = ECAlgorithm.to_jwk(public, as_dict=True)
        algorithm = "ES256"
    document = {**fields, "use": "sig", "alg": algorithm, **extra}
    if kid is not None:
        document["kid"] = kid
    return document


def jwks(*keys: dict[str, Any]) -> dict[str, Any]:
    return {"keys": list(keys)}


def claims(**overrides: Any) -> dict[str, Any]:
    """An agent's claims, valid for an hour, with ``overrides``."""
    return {
        "sub": "a-1",
        "company": "acme",
        "role": "agent",
        "exp": int(time.time()) + 3600,
        **overrides,
    }


def signed(key: PrivateKey, kid: str | None = None, **overrides: Any) -> str:
    """A token signed with ``key`` (RS256 or ES256, by its kind), ``kid`` in its header."""
    algorithm = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(claims(**overrides), key, algorithm=algorithm, headers=headers)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(header: dict[str, Any], payload: dict[str, Any], hmac_key: bytes | None) -> str:
    """A token PyJWT would refuse to make: HS256 "signed" with any bytes (an RSA
    public key's PEM: the key-confusion attack), or with no signature (``none``)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    if hmac_key is None:
        return signing_input + "."
    signature = hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def write(path: Path, content: bytes | dict[str, Any]) -> str:
    path.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
    return str(path)


# The secrets and the cache -----------------------------------------------------


def test_a_verified_token_is_served_again_until_it_expires() -> None:
    # exp counts whole seconds from the current one: at least seconds(1) of life is
    # left for the first two checks, however late in its second the token is made.
    tokens = Tokens(secrets=[SECRET])
    now = int(time.time())
    ttl = 1 + math.ceil(seconds(1))
    token = issue(SECRET, company="acme", sub="a-1", role="agent", now=now, ttl=ttl)
    assert tokens.verify(token).sub == "a-1"
    assert tokens.verify(token).sub == "a-1"  # from the cache
    time.sleep(max(0.0, now + ttl - time.time()) + 0.01)  # the behaviour is time itself
    with pytest.raises(TokenError, match="expired"):
        tokens.verify(token)
    with pytest.raises(TokenError, match="expired"):
        tokens.verify(token)


def test_the_cache_is_per_set_of_keys() -> None:
    token = issue(SECRET, company="acme", sub="a-1", role="agent", now=int(time.time()))
    assert Tokens(secrets=[SECRET]).verify(token).company == "acme"
    with pytest.raises(TokenError, match="invalid token"):
        Tokens(secrets=["another-secret-" + "y" * 32]).verify(token)


def test_a_secret_is_rotated_without_a_refused_token() -> None:
    now = int(time.time())
    old = issue(OLD_SECRET, company="acme", sub="a-1", role="agent", now=now)
    new = issue(NEW_SECRET, company="acme", sub="a-2", role="agent", now=now)
    before = Tokens(secrets=[OLD_SECRET])
    assert before.verify(old).sub == "a-1"
    with pytest.raises(TokenError, match="Signature verification failed"):
        before.verify(new)
    # Deployed with both: tokens of either are good, while the issuer switches.
    during = Tokens(secrets=[NEW_SECRET, OLD_SECRET])
    assert (during.verify(old).sub, during.verify(new).sub) == ("a-1", "a-2")
    # The old one removed: its tokens are refused, the new one's still good.
    after = Tokens(secrets=[NEW_SECRET])
    assert after.verify(new).sub == "a-2"
    with pytest.raises(TokenError, match="Signature verification failed"):
        after.verify(old)


def test_claims_are_the_specs_and_others_are_ignored() -> None:
    tokens = Tokens(secrets=[SECRET])
    extra = claims(
        segments=["sales", "vip", "sales"],
        iat=int(time.time()) + 600,  # a clock ahead: iat is not checked
        scope="openid profile",
        azp="console",
        realm_access={"roles": ["offline_access"]},
    )
    identity = tokens.verify(jwt.encode(extra, SECRET, algorithm="HS256"))
    assert identity == Identity("a-1", "acme", "agent", ("sales", "vip"), extra["exp"])
    for missing in ("company", "role", "sub", "exp"):
        token = jwt.encode(
            {k: v for k, v in claims().items() if k != missing}, SECRET, algorithm="HS256"
        )
        with pytest.raises(TokenError):
            tokens.verify(token)
    with pytest.raises(TokenError, match="segments"):
        tokens.verify(jwt.encode(claims(segments="sales"), SECRET, algorithm="HS256"))


def test_nothing_to_verify_with_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="nothing would verify tokens"):
        Tokens()
    with pytest.raises(ValueError, match="empty"):
        Tokens(secrets=[""])


# Public keys from files ----------------------------------------------------------


def test_rs256_with_a_pem_file(tmp_path: Path) -> None:
    key = rsa_key()
    tokens = Tokens(keys=load_key_file(write(tmp_path / "idp.pem", public_pem(key))))
    assert tokens.verify(signed(key, role="supervisor")).role == "supervisor"
    # Its key has no kid: it verifies tokens naming none, or one no key has.
    assert tokens.verify(signed(key, kid="k1", sub="a-2")).sub == "a-2"
    with pytest.raises(TokenError, match="Signature verification failed"):
        tokens.verify(signed(rsa_key("other"), sub="a-3"))
    with pytest.raises(UnknownKey, match="unknown kid 'k1'"):
        tokens.verify(signed(rsa_key("other"), kid="k1", sub="a-3"))
    # No secret either: an HS256 token has nothing to verify it.
    with pytest.raises(TokenError, match="not allowed"):
        tokens.verify(issue(SECRET, company="acme", sub="a-4", role="agent", now=int(time.time())))


def test_a_pem_file_given_a_kid_verifies_the_tokens_naming_it(tmp_path: Path) -> None:
    key = rsa_key()
    path = write(tmp_path / "idp.pem", public_pem(key))
    tokens = Tokens(secrets=[SECRET], keys=load_key_file(f"2024-06={path}"))
    assert tokens.verify(signed(key, kid="2024-06")).sub == "a-1"
    with pytest.raises(TokenError, match="unknown kid"):
        tokens.verify(signed(key, kid="2024-07"))
    with pytest.raises(TokenError, match="not allowed"):  # no kid: the secret's, HS256 only
        tokens.verify(signed(key))


def test_es256_with_a_certificate(tmp_path: Path) -> None:
    key = ec_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idp.example.com")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    path = write(tmp_path / "idp.crt", certificate.public_bytes(serialization.Encoding.PEM))
    assert Tokens(keys=load_key_file(path)).verify(signed(key)).sub == "a-1"


def test_es256_with_a_jwks_file_picks_the_key_by_kid(tmp_path: Path) -> None:
    first, second = ec_key("first"), ec_key("second")
    path = write(tmp_path / "jwks.json", jwks(jwk(first, "k1"), jwk(second, "k2")))
    tokens = Tokens(keys=load_key_file(path))
    assert tokens.verify(signed(first, kid="k1", sub="a-1")).sub == "a-1"
    assert tokens.verify(signed(second, kid="k2", sub="a-2")).sub == "a-2"
    # The key the kid names, and only that one.
    with pytest.raises(TokenError, match="Signature verification failed"):
        tokens.verify(signed(first, kid="k2", sub="a-3"))


def test_an_unknown_kid_is_refused(tmp_path: Path) -> None:
    key = ec_key()
    tokens = Tokens(keys=load_key_file(write(tmp_path / "jwks.json", jwks(jwk(key, "k1")))))
    with pytest.raises(UnknownKey, match="unknown kid 'k9'"):
        tokens.verify(signed(key, kid="k9"))
    with pytest.raises(TokenError, match="Key ID header parameter must be a string"):
        tokens.verify(forged({"alg": "ES256", "kid": 7}, claims(), b"x"))


def test_a_token_without_a_kid_is_refused_by_a_key_set_of_named_keys(tmp_path: Path) -> None:
    key = ec_key()
    tokens = Tokens(keys=load_key_file(write(tmp_path / "jwks.json", jwks(jwk(key, "k1")))))
    with pytest.raises(TokenError, match="no key here verifies tokens without a kid"):
        tokens.verify(signed(key))


def test_an_hs256_token_with_a_kid_is_still_verified_by_the_secrets(tmp_path: Path) -> None:
    # An issuer that names its secret in every token keeps working.
    tokens = Tokens(
        secrets=[SECRET],
        keys=load_key_file(write(tmp_path / "jwks.json", jwks(jwk(ec_key(), "k1")))),
    )
    token = jwt.encode(claims(), SECRET, algorithm="HS256", headers={"kid": "hs-2024"})
    assert tokens.verify(token).sub == "a-1"


# The algorithm is the key's -------------------------------------------------------


@pytest.mark.parametrize("kid", [None, "k1"])
def test_alg_none_is_refused(tmp_path: Path, kid: str | None) -> None:
    path = write(tmp_path / "jwks.json", jwks(jwk(rsa_key(), "k1")))
    tokens = Tokens(secrets=[SECRET], keys=load_key_file(path))
    header = {"alg": "none", "typ": "JWT", **({"kid": kid} if kid else {})}
    for token in (
        forged(header, claims(), None),
        forged({**header, "alg": "None"}, claims(), None),
    ):
        with pytest.raises(TokenError, match="not allowed"):
            tokens.verify(token)


def test_hs256_signed_with_the_public_key_is_refused(tmp_path: Path) -> None:
    """The key-confusion attack: a verifier that let the header pick the
    algorithm would check this HMAC with the PEM it holds, and accept it."""
    key = rsa_key()
    pem = public_pem(key)
    pem_path = write(tmp_path / "idp.pem", pem)
    jwks_path = write(tmp_path / "jwks.json", jwks(jwk(key, "k1")))
    tokens = Tokens(secrets=[SECRET], keys=[*load_key_file(pem_path), *load_key_file(jwks_path)])
    assert tokens.verify(signed(key)).sub == "a-1"
    assert tokens.verify(signed(key, kid="k1")).sub == "a-1"
    for hmac_key in (pem, pem.strip(), pem.replace(b"\n", b"\r\n")):
        for header in ({"alg": "HS256", "typ": "JWT"}, {"alg": "HS256", "kid": "k1"}):
            with pytest.raises(TokenError):
                tokens.verify(forged(header, claims(), hmac_key))
    # An ES256 key does not verify an RS256 token that names it, nor the reverse.
    mixed = write(tmp_path / "mixed.json", jwks(jwk(key, "rsa"), jwk(ec_key(), "ec")))
    tokens = Tokens(keys=load_key_file(mixed))
    with pytest.raises(TokenError, match="not allowed"):
        tokens.verify(signed(key, kid="ec"))


# Issuer and audience -----------------------------------------------------------------


def test_issuer_and_audience_are_checked_when_configured(tmp_path: Path) -> None:
    key = rsa_key()
    keys = load_key_file(write(tmp_path / "idp.pem", public_pem(key)))
    issuer, audience = "https://idp.example.com/realms/acme", "presence"
    tokens = Tokens(keys=keys, issuer=issuer, audience=audience)
    assert tokens.verify(signed(key, iss=issuer, aud=audience)).sub == "a-1"
    assert tokens.verify(signed(key, iss=issuer, aud=["account", audience], sub="a-2")).sub == (
        "a-2"
    )
    for bad, message in (
        ({"iss": "https://evil.example.com", "aud": audience}, "Invalid issuer"),
        ({"aud": audience}, 'Token is missing the "iss" claim'),
        ({"iss": issuer, "aud": "account"}, "Audience doesn't match"),
        ({"iss": issuer}, 'Token is missing the "aud" claim'),
    ):
        with pytest.raises(TokenError, match=message):
            tokens.verify(signed(key, **bad))
    # Unconfigured, neither is checked: an identity provider's aud is just another claim.
    assert Tokens(keys=keys).verify(signed(key, iss="anyone", aud="anything")).sub == "a-1"


# Files that are not keys to verify with ----------------------------------------------


def test_key_files_that_cannot_verify_are_refused_when_loaded(tmp_path: Path) -> None:
    private = rsa_key().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(ValueError, match="a private key"):
        load_key_file(write(tmp_path / "private.pem", private))
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(ValueError, match="1024-bit"):
        load_key_file(write(tmp_path / "small.pem", public_pem(small)))
    p384 = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(ValueError, match="P-256"):
        load_key_file(write(tmp_path / "p384.pem", public_pem(p384)))
    with pytest.raises(ValueError, match="not a PEM"):
        load_key_file(write(tmp_path / "junk.pem", b"-----BEGIN PUBLIC KEY-----\njunk\n"))
    with pytest.raises(ValueError, match="names its keys"):
        load_key_file(f"k1={write(tmp_path / 'jwks.json', jwks(jwk(ec_key(), 'k1')))}")
    with pytest.raises(FileNotFoundError):
        load_key_file(str(tmp_path / "missing.pem"))


def test_a_jwks_keeps_only_the_keys_that_verify_rs256_or_es256(tmp_path: Path) -> None:
    good = jwk(rsa_key(), "sig")
    private = {**jwk(ec_key(), "private"), "d": "AAAA"}
    symmetric = {"kty": "oct", "kid": "oct", "k": _b64(SECRET.encode())}
    encryption = jwk(rsa_key(), "enc", use="enc", alg="RSA-OAEP")
    rs512 = jwk(rsa_key(), "rs512", alg="RS512")
    document = jwks(encryption, symmetric, private, rs512, good)
    keys = load_key_file(write(tmp_path / "jwks.json", document))
    assert [key.kid for key in keys] == ["sig"]
    with pytest.raises(ValueError, match="no key in it"):
        load_key_file(write(tmp_path / "none.json", jwks(symmetric, encryption)))
    with pytest.raises(ValueError, match="not a JWKS"):
        load_key_file(write(tmp_path / "not.json", {"kty": "RSA"}))
