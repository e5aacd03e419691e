"""mod_resumable against the reference tus client, tus-js-client (Node).

Each test drives test/js/tus_client.mjs (a CLI around tus-js-client 4.3.1,
installed from the repo's package-lock.json with `npm ci`) against the /files/
area of the `rs_default` server, then checks the result over plain HTTP:
the finished upload's bytes (GET, sha256 against the source file) and the
metadata filename in Content-Disposition.
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
CLIENT = REPO / "test" / "js" / "tus_client.mjs"
TUS_JS_VERSION = "4.3.1"

MiB = 1024 * 1024
CLIENT_TIMEOUT = 120  # the client's own bound (it exits 1 after that)


def _tus_js_installed() -> bool:
    pkg = REPO / "node_modules" / "tus-js-client" / "package.json"
    try:
        return json.loads(pkg.read_text())["version"] == TUS_JS_VERSION
    except (OSError, ValueError, KeyError):
        return False


@pytest.fixture(scope="session")
def node_bin():
    """node, with tus-js-client installed (`npm ci` once per session if not).

    Not a skip: CI must be able to install it, so a failure here fails."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: the tus-js-client tests need Node >= 18 "
                    "(tools/run.sh and CI install the repo's npm dependencies)")
    if not _tus_js_installed():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is not installed: cannot `npm ci` tus-js-client")
        try:
            p = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=REPO,
                               capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            pytest.fail("`npm ci` in the repo did not finish within 600 s")
        if p.returncode != 0 or not _tus_js_installed():
            pytest.fail(f"`npm ci` failed (exit {p.returncode}); tus-js-client "
                        f"{TUS_JS_VERSION} is needed:\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}")
    return node


def run_client(node, endpoint, path, mode="plain", *, chunk_size=None, parallel=None,
               url_storage=None, metadata=None, protocol=None, extra=()):
    """Runs the Node client; returns its JSON result (a dict)."""
    cmd = [node, str(CLIENT), "--endpoint", endpoint, "--file", str(path),
           "--mode", mode, "--timeout", str(CLIENT_TIMEOUT)]
    if chunk_size is not None:
        cmd += ["--chunk-size", str(chunk_size)]
    if parallel is not None:
        cmd += ["--parallel", str(parallel)]
    if url_storage is not None:
        cmd += ["--url-storage", str(url_storage)]
    if protocol is not None:
        cmd += ["--protocol", protocol]
    for k, v in (metadata or {}).items():
        cmd += ["--metadata", f"{k}={v}"]
    cmd += list(extra)
    try:
        p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True,
                           timeout=CLIENT_TIMEOUT + 30)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"tus_client.mjs hung past its own timeout: {' '.join(cmd)}\n"
                    f"stderr: {e.stderr}")
    lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
    assert lines, f"no output from {' '.join(cmd)} (exit {p.returncode})\nstderr: {p.stderr}"
    try:
        res = json.loads(lines[-1])
    except ValueError:
        pytest.fail(f"tus_client.mjs printed no JSON: {p.stdout!r}\nstderr: {p.stderr}")
    res["_exit"] = p.returncode
    res["_stderr"] = p.stderr
    res["_cmd"] = " ".join(cmd)
    return res


def assert_ok(res):
    assert res["ok"] is True and res["_exit"] == 0, \
        f"tus-js-client failed: {res.get('error')} (last: {res.get('lastExchange')})\n" \
        f"cmd: {res['_cmd']}\nstderr: {res['_stderr'][-3000:]}"
    assert res["uploadUrl"], res


def allow_client_abort(env, upload_url):
    """The interrupt/terminate modes call upload.abort(), which may cut a
    PATCH off mid-body; the module logs that request's failed body read.
    Allowed for this one upload only."""
    path = urllib.parse.urlsplit(upload_url).path
    env.allow_errors(patterns=[re.escape(f'{path}:') + r' \d{3} ERR_BODY_READ'])


def make_file(env, name, size) -> Path:
    path = Path(env.gen) / "tusjs" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, MiB)
            f.write(os.urandom(n))
            left -= n
    return path


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(MiB), b""):
            h.update(block)
    return h.hexdigest()


def http(method, url, headers=None, timeout=30):
    """(status, headers, body) — also for 4xx/5xx."""
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        body = e.read() if method != "HEAD" else b""
        return e.code, e.headers, body


def assert_download(res, path, filename):
    """GET of the finished upload: its bytes and Content-Disposition."""
    status, headers, body = http("GET", res["uploadUrl"], timeout=60)
    assert status == 200, f"GET {res['uploadUrl']} -> {status}"
    assert len(body) == path.stat().st_size
    assert hashlib.sha256(body).hexdigest() == sha256_file(path), \
        f"GET {res['uploadUrl']}: content differs from the uploaded file"
    cd = headers.get("Content-Disposition")
    assert cd is not None, f"GET {res['uploadUrl']}: no Content-Disposition"
    assert filename in cd, f"Content-Disposition {cd!r} lacks the metadata filename {filename!r}"


@pytest.mark.usefixtures("rs_default")
class TestTusJs:

    @pytest.fixture(autouse=True)
    def _setup(self, env, node_bin):
        self.env = env
        self.node = node_bin
        self.endpoint = f"{env.url}/files/"

    def test_rs_900_01(self):
        """plain 3 MiB upload with tus-js-client (one PATCH)"""
        path = make_file(self.env, "plain.bin", 3 * MiB)
        res = run_client(self.node, self.endpoint, path, "plain",
                         metadata={"filename": "tusjs-plain.bin"})
        assert_ok(res)
        assert res["bytes"] == 3 * MiB
        assert res["uploadUrl"].startswith(self.endpoint), res["uploadUrl"]
        assert_download(res, path, "tusjs-plain.bin")

    def test_rs_900_02(self, tmp_path):
        """interrupt at ~40 %, then a new Upload resumes from the server's offset"""
        size = 3 * MiB
        path = make_file(self.env, "interrupt.bin", size)
        storage = tmp_path / "tus-url-storage.json"
        res = run_client(self.node, self.endpoint, path, "interrupt",
                         chunk_size=256 * 1024, url_storage=storage,
                         metadata={"filename": "tusjs-interrupt.bin"})
        if res.get("firstUrl"):
            allow_client_abort(self.env, res["firstUrl"])
        assert_ok(res)
        assert res["previousUploads"] >= 1, res
        assert res["resumed"] is True, f"did not resume via HEAD on the same URL: {res}"
        assert res["uploadUrl"] == res["firstUrl"]
        assert res["resumeOffset"] is not None and 0 < res["resumeOffset"] < size, res
        assert res["bytes"] < size, f"resumed run sent the whole file again: {res}"
        assert res["resumeOffset"] + res["bytes"] == size, res
        assert_download(res, path, "tusjs-interrupt.bin")

    def test_rs_900_03(self):
        """parallelUploads 4: four partial uploads concatenated by a final POST"""
        size = 10 * MiB
        path = make_file(self.env, "parallel.bin", size)
        res = run_client(self.node, self.endpoint, path, "parallel", parallel=4,
                         metadata={"filename": "tusjs-parallel.bin"})
        assert_ok(res)
        assert res["parts"] == 4, res
        assert res["finalConcat"] and res["finalConcat"].startswith("final;"), res
        assert_download(res, path, "tusjs-parallel.bin")

    @pytest.mark.parametrize("chunk_size", [None, MiB], ids=["whole", "1MiB"])
    def test_rs_900_04(self, chunk_size):
        """uploadDataDuringCreation: the POST carries the data (or the first chunk)"""
        size = 3 * MiB + 4321
        path = make_file(self.env, f"creation-{chunk_size}.bin", size)
        name = f"tusjs-creation-{chunk_size or 'whole'}.bin"
        res = run_client(self.node, self.endpoint, path, "during-creation",
                         chunk_size=chunk_size, metadata={"filename": name})
        assert_ok(res)
        expect = size if chunk_size is None else chunk_size
        assert res["creationOffset"] == expect, \
            f"POST answered Upload-Offset {res['creationOffset']}, expected {expect}"
        assert_download(res, path, name)

    def test_rs_900_05(self):
        """uploadLengthDeferred with a stream input; Upload-Length on the last PATCH"""
        # not a multiple of the chunk size: tus-js-client 4.3.1 stalls then
        # (tus-js-client#779)
        size = 3 * MiB + 12345
        path = make_file(self.env, "deferred.bin", size)
        res = run_client(self.node, self.endpoint, path, "deferred", chunk_size=MiB,
                         metadata={"filename": "tusjs-deferred.bin"})
        assert_ok(res)
        assert res["deferredLength"] == size, res
        assert res["bytes"] == size, res
        assert_download(res, path, "tusjs-deferred.bin")

    def test_rs_900_06(self):
        """termination: partial upload, abort, tus.Upload.terminate -> 204, then gone"""
        path = make_file(self.env, "terminate.bin", 3 * MiB)
        res = run_client(self.node, self.endpoint, path, "terminate",
                         chunk_size=512 * 1024,
                         metadata={"filename": "tusjs-terminate.bin"})
        if res.get("uploadUrl"):
            allow_client_abort(self.env, res["uploadUrl"])
        assert_ok(res)
        assert res["status"] == 204, res
        assert 0 < res["bytes"] < 3 * MiB, res
        status, _, _ = http("HEAD", res["uploadUrl"], headers={"Tus-Resumable": "1.0.0"})
        assert status in (404, 410), f"HEAD after DELETE -> {status}"

    def test_rs_900_07(self):
        """a tus-js-client upload's download answers Range requests"""
        size = MiB + 999
        path = make_file(self.env, "range.bin", size)
        res = run_client(self.node, self.endpoint, path, "plain",
                         metadata={"filename": "tusjs-range.bin"})
        assert_ok(res)
        data = path.read_bytes()
        status, headers, body = http("GET", res["uploadUrl"],
                                     headers={"Range": "bytes=1000-1999"})
        assert status == 206, f"Range GET -> {status}"
        assert body == data[1000:2000]
        assert headers.get("Content-Range") == f"bytes 1000-1999/{size}"
