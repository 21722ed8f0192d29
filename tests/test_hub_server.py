"""A small in-memory stand-in for the Hugging Face Hub's HTTP API, for the hub/ script tests.

It serves the routes huggingface_hub's `HfApi` (2.x) uses to create repositories, upload files, list and
download them and set Space variables, keeping every repository's files per commit in memory:

    POST /api/repos/create                                  create_repo (409 when it exists)
    POST /api/validate-yaml                                 README.md metadata check before a commit
    GET  /api/whoami-v2                                     whoami
    GET  /api/agent-harnesses                               the client's user-agent registry (empty)
    GET  /api/{type}s/{repo_id}[/revision/{rev}]            model_info / space_info / repo_info
    POST /api/{type}s/{repo_id}/preupload/{rev}             upload modes: always "regular" (base64 in the commit)
    POST /api/{type}s/{repo_id}/commit/{rev}                NDJSON commit: header, file (base64), deletedFile/Folder
    GET  /api/{type}s/{repo_id}/tree/{rev}[/{path}]         list_repo_tree (snapshot_download)
    GET/POST /api/spaces/{repo_id}/variables                get_space_variables / add_space_variable
    POST /api/spaces/{repo_id}/hardware                     request_space_hardware
    HEAD/GET /[{type}s/]{repo_id}/resolve/{rev}/{path}      file metadata (ETag, X-Repo-Commit) and download

Writes need ``Authorization: Bearer <token>``. Every request is logged in `FakeHub.requests`; a route the
server does not know answers 404 and is also logged in `FakeHub.unhandled`, so a test can assert the client
used nothing else. The server answers "regular" to every preupload, so no LFS or Xet transfer is exercised.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}


def git_blob_id(content: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


class FakeRepo:
    def __init__(self, repo_type: str, repo_id: str, private: bool, sdk: str | None, hardware: str | None):
        self.type, self.id, self.private, self.sdk = repo_type, repo_id, private, sdk
        self.hardware = hardware
        self.variables: dict[str, dict] = {}
        self.commits: list[tuple[str, dict[str, bytes], str]] = []  # (sha, files, summary)
        self.commit({".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"}, "initial commit")

    @property
    def head(self) -> str:
        return self.commits[-1][0]

    def files(self, revision: str = "main") -> dict[str, bytes] | None:
        if revision in ("main", "HEAD"):
            return self.commits[-1][1]
        for sha, files, _ in self.commits:
            if sha == revision:
                return files
        return None

    def commit(self, files: dict[str, bytes], summary: str) -> str:
        digest = hashlib.sha1(f"{self.id}:{len(self.commits)}:{summary}".encode())
        for path in sorted(files):
            digest.update(path.encode() + git_blob_id(files[path]).encode())
        sha = digest.hexdigest()
        self.commits.append((sha, files, summary))
        return sha


class FakeHub:
    """Start with `FakeHub(token)`; `endpoint` is the value for $HF_ENDPOINT; `close()` stops it."""

    def __init__(self, token: str = "hf_fake_token", user: str = "tester"):
        self.token, self.user = token, user
        self.repos: dict[tuple[str, str], FakeRepo] = {}
        self.requests: list[str] = []
        self.unhandled: list[str] = []
        self.validated: list[str] = []  # repo types of the README.md metadata checks
        self.lock = threading.Lock()
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="fake-hub", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def repo(self, repo_id: str, repo_type: str = "model") -> FakeRepo:
        return self.repos[(repo_type, repo_id)]

    def read(self, repo_id: str, path: str, repo_type: str = "model") -> bytes:
        return self.repo(repo_id, repo_type).files()[path]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub: FakeHub

    def log_message(self, format, *args):  # quiet
        pass

    # -- plumbing -------------------------------------------------------------------------------------------------

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, content_type="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload, headers: dict | None = None):
        self._send(status, json.dumps(payload).encode(), headers)

    def _error(self, status: int, message: str, code: str | None = None):
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._json(status, {"error": message}, headers)

    def _authorised(self) -> bool:
        return self.headers.get("Authorization") == f"Bearer {self.hub.token}"

    def _repo(self, repo_type: str, repo_id: str) -> FakeRepo | None:
        repo = self.hub.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and not self._authorised()):
            self._error(404, f"Repository Not Found for url: {self.path}", "RepoNotFound")
            return None
        return repo

    def do_GET(self):
        self._dispatch()

    def do_HEAD(self):
        self._dispatch()

    def do_POST(self):
        self._dispatch()

    def _dispatch(self):
        url = urlsplit(self.path)
        self.query = parse_qs(url.query)
        parts = [unquote(part) for part in url.path.strip("/").split("/")]
        self.hub.requests.append(f"{self.command} {url.path}")
        body = self._body() if self.command == "POST" else b""
        with self.hub.lock:
            handled = self._route(parts, body)
        if not handled:
            self.hub.unhandled.append(f"{self.command} {self.path}")
            self._error(404, f"fake hub: no route for {self.command} {url.path}")

    def _route(self, parts: list[str], body: bytes) -> bool:
        method = self.command
        if parts == ["api", "whoami-v2"] and method == "GET":
            if not self._authorised():
                self._error(401, "Invalid credentials in Authorization header")
            else:
                self._json(200, {"type": "user", "name": self.hub.user, "orgs": [], "auth": {"type": "access_token"}})
            return True
        if parts == ["api", "agent-harnesses"] and method == "GET":  # the client's user-agent registry
            self._json(200, {"standardEnvVars": [], "harnesses": {}})
            return True
        if parts == ["api", "validate-yaml"] and method == "POST":
            self._validate_yaml(json.loads(body))
            return True
        if parts == ["api", "repos", "create"] and method == "POST":
            self._create_repo(json.loads(body or b"{}"))
            return True
        if len(parts) >= 4 and parts[0] == "api" and parts[1] in REPO_TYPES:
            repo_type, repo_id, rest = REPO_TYPES[parts[1]], f"{parts[2]}/{parts[3]}", parts[4:]
            return self._repo_api(method, repo_type, repo_id, rest, body)
        # File resolution: [type prefix/]ns/name/resolve/rev/path...
        repo_type = "model"
        if parts and parts[0] in REPO_TYPES and parts[0] != "models":
            repo_type, parts = REPO_TYPES[parts[0]], parts[1:]
        if len(parts) >= 5 and parts[2] == "resolve" and method in ("GET", "HEAD"):
            self._resolve(repo_type, f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]))
            return True
        return False

    # -- routes ---------------------------------------------------------------------------------------------------

    def _validate_yaml(self, payload: dict):
        """README.md metadata: the front matter must be a YAML mapping (a Space's must name its sdk)."""
        import yaml

        content, errors = payload.get("content", ""), []
        if content.startswith("---"):
            try:
                meta = yaml.safe_load(content.split("---", 2)[1])
            except (yaml.YAMLError, IndexError) as error:
                errors.append({"message": f"invalid YAML: {error}"})
            else:
                if not isinstance(meta, dict):
                    errors.append({"message": "metadata must be a mapping"})
                elif payload.get("repoType") == "space" and "sdk" not in meta:
                    errors.append({"message": '"sdk" is required'})
        self.hub.validated.append(payload.get("repoType"))
        if errors:
            self._json(400, {"errors": errors}, {"X-Error-Message": errors[0]["message"]})
        else:
            self._json(200, {"warnings": []})

    def _create_repo(self, payload: dict):
        if not self._authorised():
            self._error(401, "You must be authenticated to create a repository")
            return
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or self.hub.user}/{payload['name']}"
        url = f"{self.hub.endpoint}/{URL_PREFIX[repo_type]}{repo_id}"
        if (repo_type, repo_id) in self.hub.repos:
            self._json(409, {"error": "You already created this repo", "url": url}, {"X-Error-Message": "You already created this repo"})
            return
        if repo_type == "space" and not payload.get("sdk"):
            self._error(400, "sdk is required for a Space")
            return
        private = payload.get("private", payload.get("visibility") == "private")
        self.hub.repos[(repo_type, repo_id)] = FakeRepo(
            repo_type, repo_id, bool(private), payload.get("sdk"), payload.get("hardware")
        )
        self._json(200, {"url": url, "name": repo_id, "id": repo_id})

    def _writable_repo(self, repo_type: str, repo_id: str) -> FakeRepo | None:
        """The repository for a call that needs a token, or None once a 401 or 404 has been answered."""
        if not self._authorised():
            self._error(401, "Invalid credentials")
            return None
        return self._repo(repo_type, repo_id)

    def _repo_api(self, method: str, repo_type: str, repo_id: str, rest: list[str], body: bytes) -> bool:
        if method == "GET" and (not rest or (len(rest) == 2 and rest[0] == "revision")):
            repo = self._repo(repo_type, repo_id)
            if repo is not None:
                self._info(repo, rest[1] if rest else "main")
            return True
        if method == "POST" and len(rest) == 2 and rest[0] in ("preupload", "commit"):
            repo = self._writable_repo(repo_type, repo_id)
            if repo is None:
                return True
            if repo.files(rest[1]) is None:
                self._error(404, f"Invalid rev id: {rest[1]}", "RevisionNotFound")
            elif rest[0] == "preupload":
                self._preupload(repo, rest[1], json.loads(body))
            else:
                self._commit(repo, rest[1], body)
            return True
        if method == "GET" and len(rest) >= 2 and rest[0] == "tree":
            repo = self._repo(repo_type, repo_id)
            if repo is not None:
                self._tree(repo, rest[1], "/".join(rest[2:]))
            return True
        if repo_type == "space" and rest == ["variables"] and method in ("GET", "POST"):
            repo = self._writable_repo(repo_type, repo_id)
            if repo is None:
                return True
            if method == "POST":
                payload = json.loads(body)
                repo.variables[payload["key"]] = {
                    "value": payload["value"],
                    "description": payload.get("description"),
                    "updatedAt": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
                }
            self._json(200, repo.variables)
            return True
        if repo_type == "space" and rest == ["hardware"] and method == "POST":
            if not self._authorised():
                self._error(401, "Invalid credentials")
                return True
            repo = self._repo(repo_type, repo_id)
            if repo is not None:
                repo.hardware = json.loads(body)["flavor"]
                self._json(200, self._runtime(repo))
            return True
        if repo_type == "space" and rest == ["runtime"] and method == "GET":
            repo = self._repo(repo_type, repo_id)
            if repo is not None:
                self._json(200, self._runtime(repo))
            return True
        return False

    @staticmethod
    def _runtime(repo: FakeRepo) -> dict:
        return {"stage": "BUILDING", "hardware": {"current": None, "requested": repo.hardware}, "storage": None}

    def _info(self, repo: FakeRepo, revision: str):
        files = repo.files(revision)
        if files is None:
            self._error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            return
        sha = repo.head if revision in ("main", "HEAD") else revision
        info = {
            "id": repo.id,
            "author": repo.id.split("/")[0],
            "sha": sha,
            "private": repo.private,
            "disabled": False,
            "gated": False,
            "lastModified": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
            "tags": [],
            "siblings": [{"rfilename": path} for path in sorted(files)],
        }
        if repo.type == "space":
            info["sdk"] = repo.sdk
            info["runtime"] = self._runtime(repo)
        self._json(200, info)

    def _preupload(self, repo: FakeRepo, revision: str, payload: dict):
        files = repo.files(revision)
        answer = []
        for entry in payload["files"]:
            existing = files.get(entry["path"])
            answer.append(
                {
                    "path": entry["path"],
                    "uploadMode": "regular",
                    "shouldIgnore": False,
                    "oid": git_blob_id(existing) if existing is not None else None,
                }
            )
        self._json(200, {"files": answer, "commitOid": repo.head})

    def _commit(self, repo: FakeRepo, revision: str, body: bytes):
        files = dict(repo.files(revision))
        summary = ""
        for line in body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                summary = value.get("summary", "")
                parent = value.get("parentCommit")
                if parent is not None and parent != repo.head:
                    self._error(412, "A commit has happened since. Please refresh and try again.")
                    return
            elif key == "file":
                if value.get("encoding") != "base64":
                    self._error(400, f"unsupported encoding {value.get('encoding')}")
                    return
                files[value["path"]] = base64.b64decode(value["content"])
            elif key == "deletedFile":
                files.pop(value["path"], None)
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                files = {path: data for path, data in files.items() if not path.startswith(prefix)}
            else:  # lfsFile: the fake hub only ever asks for regular uploads
                self._error(400, f"fake hub: unsupported commit entry {key}")
                return
        sha = repo.commit(files, summary)
        self._json(
            200,
            {
                "success": True,
                "commitOid": sha,
                "commitUrl": f"{self.hub.endpoint}/{URL_PREFIX[repo.type]}{repo.id}/commit/{sha}",
                "pullRequestUrl": None,
            },
        )

    def _tree(self, repo: FakeRepo, revision: str, path: str):
        files = repo.files(revision)
        if files is None:
            self._error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            return
        recursive = self.query.get("recursive", ["False"])[0].lower() in ("1", "true")
        prefix = path.rstrip("/") + "/" if path else ""
        entries, folders = [], set()
        for name in sorted(files):
            if not name.startswith(prefix):
                continue
            relative = name[len(prefix) :]
            dirs = relative.split("/")[:-1]
            for depth in range(1, len(dirs) + 1):
                if recursive or depth == 1:
                    folders.add(prefix + "/".join(dirs[:depth]))
            if recursive or not dirs:
                entries.append({"type": "file", "oid": git_blob_id(files[name]), "size": len(files[name]), "path": name})
        if path and not entries and not folders:
            self._error(404, f"{path} does not exist on {revision}", "EntryNotFound")
            return
        entries += [{"type": "directory", "oid": hashlib.sha1(f.encode()).hexdigest(), "size": 0, "path": f} for f in sorted(folders)]
        self._json(200, entries)

    def _resolve(self, repo_type: str, repo_id: str, revision: str, path: str):
        repo = self._repo(repo_type, repo_id)
        if repo is None:
            return
        files = repo.files(revision)
        if files is None:
            self._error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            return
        if path not in files:
            self._error(404, f"Entry not found: {path}", "EntryNotFound")
            return
        content = files[path]
        sha = repo.head if revision in ("main", "HEAD") else revision
        headers = {"X-Repo-Commit": sha, "ETag": f'"{git_blob_id(content)}"', "Accept-Ranges": "bytes"}
        self._send(200, content, headers, content_type="application/octet-stream")


# -- the server's own checks, through the real client ------------------------------------------------------------


@pytest.mark.parametrize("disable_xet", ["0", "1"], ids=["pipelined-upload", "create-commit"])
def test_fake_hub_round_trip_through_huggingface_hub(tmp_path, disable_xet):
    """create_repo, upload_folder, list and download through HfApi in a subprocess pointed at the fake hub,
    through both of upload_folder's paths (the pipelined one when hf_xet is installed, and create_commit)."""
    import subprocess
    import sys

    hub = FakeHub()
    try:
        folder = tmp_path / "folder"
        (folder / "sub").mkdir(parents=True)
        (folder / "a.txt").write_text("hello")
        (folder / "sub" / "b.bin").write_bytes(bytes(range(256)) * 10)
        script = f"""
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
api = HfApi()
url = api.create_repo("tester/demo", exist_ok=True)
api.create_repo("tester/demo", exist_ok=True)
api.upload_folder(repo_id=url.repo_id, folder_path={str(folder)!r})
print(sorted(api.list_repo_files("tester/demo")))
path = snapshot_download("tester/demo")
print(open(path + "/sub/b.bin", "rb").read() == bytes(range(256)) * 10)
print(open(hf_hub_download("tester/demo", "a.txt"), encoding="utf-8").read())
"""
        env = hub_env(hub, tmp_path)
        env["HF_HUB_DISABLE_XET"] = disable_xet
        result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == ["['.gitattributes', 'a.txt', 'sub/b.bin']", "True", "hello"]
        assert hub.unhandled == []
        assert len(hub.repo("tester/demo").commits) == 2  # the initial commit and the upload
    finally:
        hub.close()


def hub_env(hub: FakeHub, tmp_path) -> dict:
    """Environment for a subprocess that talks to ``hub``: its endpoint, its token, an empty cache, online."""
    import os

    env = dict(os.environ)
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_TOKEN_PATH", "HUGGING_FACE_HUB_TOKEN"):
        env.pop(name, None)
    env.update(
        HF_ENDPOINT=hub.endpoint,
        HF_TOKEN=hub.token,
        HF_HOME=str(tmp_path / "hf_home"),
        HF_HUB_OFFLINE="0",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        HF_HUB_ETAG_TIMEOUT="30",
        HF_HUB_DOWNLOAD_TIMEOUT="30",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        OMP_NUM_THREADS="1",
    )
    return env
