"""runyard._http, the client's HTTP/1.1 on http.client, against a real server on 127.0.0.1 (tests/sdk/http_helpers.py)."""

from __future__ import annotations

import base64
import datetime
import hashlib
import io
import ipaddress
import json
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from http_helpers import TestServer, pattern

from runyard._http import BodyError, Session, TransportError
from runyard.client import Client
from runyard.errors import InvalidInput, PayloadTooLarge, ServerUnreachable
from runyard.testing import free_port

_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture(autouse=True)
def no_proxy_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests set the proxy variables they need; the machine's own must not leak in."""
    for var in _PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.upper(), raising=False)


@pytest.fixture
def srv() -> Iterator[TestServer]:
    with TestServer() as server:
        yield server


@pytest.fixture
def http(srv: TestServer) -> Iterator[Session]:
    with Session(srv.url + "/api/v1", {"User-Agent": "runyard-test"}, timeout_s=10) as session:
        yield session


def test_requests_share_one_keep_alive_connection(srv: TestServer, http: Session) -> None:
    for i in range(5):
        resp = http.request("GET", "/echo", params={"i": i})
        assert resp.status_code == 200 and resp.json()["query"] == {"i": [str(i)]}
    assert len(srv.connections()) == 1
    assert [s.target for s in srv.seen] == [f"/api/v1/echo?i={i}" for i in range(5)]
    assert srv.seen[0].headers["user-agent"] == "runyard-test"


def test_threads_share_the_pool(srv: TestServer, http: Session) -> None:
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(20):
                assert http.request("POST", "/echo", content=b"x" * 100).json()["n_bytes"] == 100
        except BaseException as e:  # noqa: BLE001 - reported by the assert below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(srv.seen) == 80
    assert len(srv.connections()) <= 4  # one connection per concurrent request at most, then reused


def test_a_connection_the_server_closed_while_idle_is_not_reused(srv: TestServer, http: Session) -> None:
    http.request("GET", "/close-after")
    assert srv.wait_closed()
    # An iterator body cannot be sent twice: this succeeds only if the dead connection was
    # noticed before sending, not by a retry.
    resp = http.request("POST", "/echo", content=iter([b"abc", b"def"]))
    assert resp.json()["n_bytes"] == 6
    assert len(srv.connections()) == 2


def test_a_request_the_server_dropped_on_a_reused_connection_is_sent_again(srv: TestServer, http: Session) -> None:
    http.request("GET", "/drop-next")
    resp = http.request("PUT", "/echo", content=b"payload")  # bytes: can be sent again
    assert resp.json()["n_bytes"] == 7
    assert [s.method for s in srv.seen] == ["GET", "PUT", "PUT"]
    first, dropped, again = (s.connection for s in srv.seen)
    assert first == dropped != again


def test_a_dropped_request_with_a_streamed_body_is_not_sent_again(srv: TestServer, http: Session) -> None:
    http.request("GET", "/drop-next")
    with pytest.raises(TransportError, match="closed the connection without answering"):
        http.request("POST", "/echo", content=iter([b"once"]))
    assert [s.method for s in srv.seen] == ["GET", "POST"]


def test_bodies_from_an_iterator_and_files(srv: TestServer, http: Session, tmp_path: Path) -> None:
    data = pattern(700_000)
    digest = hashlib.sha256(data).hexdigest()
    resp = http.request("POST", "/echo", content=(data[i : i + 65536] for i in range(0, len(data), 65536)))
    assert resp.json()["sha256"] == digest and resp.json()["headers"]["transfer-encoding"] == "chunked"

    path = tmp_path / "data.bin"
    path.write_bytes(data)
    with open(path, "rb") as f:
        f.read(100)  # sent from its position
        resp = http.request("PUT", "/echo", content=f)
    assert resp.json()["n_bytes"] == len(data) - 100
    assert resp.json()["headers"]["content-length"] == str(len(data) - 100)  # a file that can seek: its size
    assert resp.json()["sha256"] == hashlib.sha256(data[100:]).hexdigest()

    class Pipe:  # a reader of unknown size: chunked
        def __init__(self) -> None:
            self._f = io.BytesIO(data)

        def read(self, n: int = -1) -> bytes:
            return self._f.read(n)

    resp = http.request("PUT", "/echo", content=Pipe())
    assert resp.json()["sha256"] == digest and resp.json()["headers"]["transfer-encoding"] == "chunked"
    assert http.request("POST", "/echo").json()["headers"]["content-length"] == "0"
    assert "content-length" not in http.request("GET", "/echo").json()["headers"]
    assert len(srv.connections()) == 1


def test_a_snapshot_blob_is_sent_with_its_size_and_hashed_as_sent(srv: TestServer, http: Session, tmp_path: Path) -> None:
    """runyard.snapshot uploads blobs through a hashing reader: its size is announced, so the
    server refuses one over its limit before it is sent."""
    from runyard.snapshot._upload import _HashingReader

    data = pattern(2_500_000)
    (tmp_path / "blob").write_bytes(data)
    progress: list[int] = []
    with open(tmp_path / "blob", "rb") as f:
        body = _HashingReader(f, progress.append)
        echo = http.request("PUT", "/echo", content=body).json()
    assert echo["headers"]["content-length"] == str(len(data)) and "transfer-encoding" not in echo["headers"]
    assert echo["sha256"] == body.sha256.hexdigest() == hashlib.sha256(data).hexdigest()
    assert sum(progress) == len(data)


def test_a_file_that_shrinks_while_sent_fails_and_leaves_the_pool_usable(srv: TestServer, http: Session) -> None:
    http.request("GET", "/echo")
    with pytest.raises(BodyError, match="after 10 of its 1000 bytes"):
        http.request("PUT", "/echo", content=_Announced(b"0123456789", 1000))
    assert http.request("GET", "/echo").status_code == 200
    assert len(srv.connections()) == 2  # the aborted request's connection was closed
    with Client(srv.url) as client, pytest.raises(InvalidInput, match="shrank while it was sent"):
        client.upload_blob("0" * 64, _Announced(b"0123456789", 1000))  # type: ignore[arg-type]


class _Announced:
    """A seekable file body whose end is ``size`` but whose reads stop after ``data``."""

    def __init__(self, data: bytes, size: int) -> None:
        self._data, self._size, self._pos = data, size, 0

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        self._pos = self._size if whence == 2 else offset
        return self._pos

    def read(self, n: int = -1) -> bytes:
        chunk = self._data[self._pos : self._pos + n if n >= 0 else None]
        self._pos += len(chunk)
        return chunk


def test_an_answer_sent_before_the_body_was_read_is_returned(srv: TestServer, http: Session) -> None:
    """A server refusing a declared size (413) answers and closes without reading the body."""
    resp = http.request("PUT", "/limit", content=b"z" * (8 * 1024 * 1024))
    assert resp.status_code == 413 and resp.json()["code"] == "too_large"
    with Client(srv.url) as client, pytest.raises(PayloadTooLarge, match="over 1000 bytes"):
        client.request("PUT", "/limit", content=b"z" * (8 * 1024 * 1024))
    assert http.request("PUT", "/limit", content=b"small").json()["n_bytes"] == 5


@pytest.mark.parametrize("chunked", [False, True])
def test_a_streamed_download(srv: TestServer, http: Session, chunked: bool) -> None:
    n = 3 * 1024 * 1024 + 17
    with http.stream("GET", "/download", params={"n": n, "chunked": chunked and 1}) as resp:
        assert resp.status_code == 200
        chunks = list(resp.iter_bytes(1024 * 1024))
    assert b"".join(chunks) == pattern(n)
    assert [len(c) for c in chunks[:3]] == [1024 * 1024] * 3
    http.request("GET", "/echo")
    assert len(srv.connections()) == 1  # read to its end: the connection went back to the pool


def test_a_download_left_early_closes_its_connection(srv: TestServer, http: Session) -> None:
    with http.stream("GET", "/download", params={"n": 5_000_000}) as resp:
        next(resp.iter_bytes(1000))
        with pytest.raises(RuntimeError, match="call read"):
            resp.content  # noqa: B018
    assert http.request("GET", "/echo").status_code == 200
    assert len(srv.connections()) == 2


def test_a_download_cut_short_of_its_content_length_fails(http: Session) -> None:
    with http.stream("GET", "/truncated") as resp, pytest.raises(TransportError, match="ended after 500 of its 1000 bytes"):
        for _ in resp.iter_bytes(100):
            pass
    with pytest.raises(TransportError, match="reading the answer to GET .*/truncated failed"):
        http.request("GET", "/truncated")


def test_params_lists_pairs_and_paths(srv: TestServer, http: Session) -> None:
    http.request("GET", "/echo", params={"task": ["a", "b c"], "wait": 0.5, "skip": None, "on": True, "off": False})
    http.request("GET", "/echo", params=[("tag", "k:v"), ("tag", "x/y"), ("limit", 3)])
    http.request("GET", "/runs/1/artifacts/a%20b/c d?x=1", params={"y": 2})
    assert [s.target for s in srv.seen] == [
        "/api/v1/echo?task=a&task=b%20c&wait=0.5&on=true&off=false",
        "/api/v1/echo?tag=k%3Av&tag=x%2Fy&limit=3",
        "/api/v1/runs/1/artifacts/a%20b/c%20d?x=1&y=2",  # an escape the caller made is kept
    ]


def test_session_headers_and_per_request_headers(srv: TestServer, http: Session) -> None:
    http.headers["X-CSRF-Token"] = "t1"
    assert http.request("GET", "/echo").json()["headers"]["x-csrf-token"] == "t1"
    got = http.request("GET", "/echo", headers={"user-agent": "other", "Authorization": "Bearer b"}).json()["headers"]
    assert got["user-agent"] == "other" and got["authorization"] == "Bearer b"
    http.headers.pop("X-CSRF-Token")
    assert "x-csrf-token" not in http.request("GET", "/echo").json()["headers"]


def test_cookies_are_kept_sent_and_deleted(srv: TestServer, http: Session) -> None:
    http.request("POST", "/cookie-set",
                 params={"set": ["sid=s3cret; Path=/; HttpOnly; SameSite=strict", "csrf=tok; Max-Age=3600"]})
    assert http.cookies.get("sid") == "s3cret" and http.cookies.get("csrf") == "tok"
    assert http.request("GET", "/echo").json()["headers"]["cookie"] == "sid=s3cret; csrf=tok"
    # Starlette's delete_cookie: an empty value, Max-Age=0 and an Expires in 1970.
    http.request("POST", "/cookie-set", params={"set": 'sid=""; expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/'})
    assert http.cookies.get("sid") is None and len(http.cookies) == 1
    assert http.request("GET", "/echo").json()["headers"]["cookie"] == "csrf=tok"
    http.cookies.clear()
    assert "cookie" not in http.request("GET", "/echo").json()["headers"]


def test_cookie_lifetimes(srv: TestServer, http: Session) -> None:
    http.request("POST", "/cookie-set", params={"set": [
        "a=1; Expires=Wed, 09 Jun 2100 10:18:14 GMT", "b=2; Max-Age=oops", "c=3; Expires=someday", "no-pair", "d=4"]})
    http.request("POST", "/cookie-set", params={"set": ["d=5; Max-Age=-1; Expires=Wed, 09 Jun 2100 10:18:14 GMT"]})
    assert http.request("GET", "/echo").json()["headers"]["cookie"] == "a=1; b=2; c=3"  # Max-Age wins over Expires
    http.cookies.set("a", "1", expires_at=time.time() - 1)
    assert http.cookies.get("a") is None
    assert http.request("GET", "/echo").json()["headers"]["cookie"] == "b=2; c=3"


def test_a_refused_connection_is_a_transport_error_and_server_unreachable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(TransportError, match=r"connecting to 127\.0\.0\.1:\d+ failed: connection refused"):
        Session(url + "/api/v1").request("GET", "/health")
    message = f"Cannot reach the Runyard server at {url}: connecting to .* failed: connection refused"
    with Client(url) as client, pytest.raises(ServerUnreachable, match=message) as info:
        client.health()
    assert "curl" in (info.value.hint or "")


def test_a_bad_server_url_fails_at_the_request_not_before() -> None:
    session = Session("127.0.0.1:8765/api/v1")
    with pytest.raises(TransportError, match="is not like http://HOST:PORT"):
        session.request("GET", "/health")


def test_timeouts(srv: TestServer, http: Session) -> None:
    t0 = time.monotonic()
    with pytest.raises(TransportError, match="no answer within 0.3 s"):
        http.request("GET", "/slow", timeout_s=0.3)
    assert time.monotonic() - t0 < 3
    srv.release.set()
    assert http.request("GET", "/slow").status_code == 200  # the timed-out connection was not pooled


def test_a_closed_session_refuses_requests(http: Session) -> None:
    http.request("GET", "/echo")
    http.close()
    http.close()
    with pytest.raises(RuntimeError, match="is closed"):
        http.request("GET", "/echo")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_proxy_from_the_environment_is_not_used_for_loopback(srv: TestServer, monkeypatch: pytest.MonkeyPatch,
                                                               host: str) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy"):
        monkeypatch.setenv(var, nowhere)
    with Session(srv.url.replace("127.0.0.1", host)) as session:
        assert session.request("GET", "/echo").status_code == 200


def test_a_plain_http_request_through_a_proxy(srv: TestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = srv.url.replace("http://", "http://us%40r:p%3Ass@")
    monkeypatch.setenv("HTTP_PROXY", proxy)
    with Session("http://runyard.invalid:8765/api/v1") as session:
        assert session.request("GET", "/echo", params={"a": 1}).status_code == 200
    (seen,) = srv.seen
    assert seen.target == "http://runyard.invalid:8765/api/v1/echo?a=1"
    assert seen.headers["host"] == "runyard.invalid:8765"
    assert seen.headers["proxy-authorization"] == "Basic " + base64.b64encode(b"us@r:p:ss").decode()

    monkeypatch.setenv("NO_PROXY", "example.org, runyard.invalid")
    with pytest.raises(TransportError, match="connecting to runyard.invalid:8765 failed: the host name does not resolve"):
        Session("http://runyard.invalid:8765/api/v1").request("GET", "/echo")
    assert len(srv.seen) == 1  # not through the proxy


def test_https_through_a_proxy_asks_for_a_tunnel(srv: TestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", srv.url)
    with pytest.raises(TransportError, match="Tunnel connection failed: 502"):
        Session("https://runyard.invalid/api/v1").request("GET", "/health")
    assert [(s.method, s.target) for s in srv.seen] == [("CONNECT", "runyard.invalid:443")]


def test_a_proxy_that_is_not_http_is_refused_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALL_PROXY", "socks5://user:secret@127.0.0.1:1080")
    fix = "only http://HOST:PORT proxies are supported. Add runyard.invalid to NO_PROXY"
    with pytest.raises(TransportError, match=fix) as info:
        Session("http://runyard.invalid:8765").request("GET", "/")
    assert "secret" not in str(info.value)


def test_https_checks_the_certificate_against_ssl_cert_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca_pem, cert_pem, key_pem = _certificates()
    (tmp_path / "ca.pem").write_bytes(ca_pem)
    (tmp_path / "cert.pem").write_bytes(cert_pem + key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem")
    with TestServer(tls=context) as srv:
        with pytest.raises(TransportError, match="TLS handshake"):  # not signed by a CA this machine trusts
            Session(srv.url).request("GET", "/echo")
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
        with Session(srv.url + "/api/v1") as session:
            for _ in range(3):
                assert session.request("GET", "/echo").json()["target"] == "/api/v1/echo"
        assert srv.url.startswith("https://") and len(srv.connections()) == 1


def _certificates() -> tuple[bytes, bytes, bytes]:
    """A CA and a certificate it signed for 127.0.0.1, as PEM: (ca, cert, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "runyard test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    return (ca.public_bytes(pem), cert.public_bytes(pem),
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def test_importing_the_client_loads_no_httpx_and_no_urllib_request() -> None:
    code = ("import sys, json, runyard.client; "
            "print(json.dumps(sorted(m for m in ('httpx', 'httpcore', 'urllib.request') if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []
