"""The registry side of publishing, through the Distribution (OCI) HTTP API: read tags, manifests and
image configs, and put manifest lists. Image layers are pushed by the Docker daemon (docker_api);
manifest lists are put here rather than with `docker manifest`, which needs its credentials in a
config file and an `--insecure` flag per call.

Credentials: $KUNLUN_REGISTRY_USER + $KUNLUN_REGISTRY_PASSWORD, else the Docker config
(`docker login`, $DOCKER_CONFIG, credential helpers). They are only ever sent to the registry (basic
auth, or a bearer token from its token service): never printed, logged or written to a file."""
from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
from dataclasses import dataclass
from typing import Optional

import docker.auth
import requests

from ..errors import PublishError, RegistryAuthError

USER_ENV, PASSWORD_ENV = "KUNLUN_REGISTRY_USER", "KUNLUN_REGISTRY_PASSWORD"
MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
LISTS = (MANIFEST_LIST, OCI_INDEX)
ACCEPT = ", ".join([MANIFEST_LIST, OCI_INDEX, MANIFEST, OCI_MANIFEST])


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str

    def __repr__(self) -> str:   # never shows the password, even in a traceback or a debugger
        return f"Credentials(username={self.username!r}, password=<hidden>)"

    def auth_config(self) -> dict:
        """What docker-py's push takes."""
        return {"username": self.username, "password": self.password}


def credentials(host: str) -> Optional[Credentials]:
    """From the environment, else from the Docker config for this host; None when neither has any."""
    user, password = os.environ.get(USER_ENV), os.environ.get(PASSWORD_ENV)
    if user and password:
        return Credentials(user, password)
    try:
        found = docker.auth.load_config().resolve_authconfig(host) or {}
    except Exception:   # an unreadable config or a failing helper: as if none were configured
        found = {}
    user = found.get("username") or found.get("Username")
    password = found.get("password") or found.get("Password")
    return Credentials(user, password) if user and password else None


def split(repository: str) -> tuple[str, str]:
    """'127.0.0.1:5000/kunlun/resnet50' -> ('127.0.0.1:5000', 'kunlun/resnet50')."""
    host, _, name = repository.partition("/")
    if not name or not ("." in host or ":" in host or host == "localhost"):
        raise PublishError(f"'{repository}' does not start with a registry host",
                           hint="give --registry as HOST[:PORT]/NAMESPACE, e.g. registry.example.com/kunlun")
    return host, name


def is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0].strip("[]") if host.count(":") <= 1 or host.startswith("[") else host
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass
class Manifest:
    digest: str
    media_type: str
    size: int
    body: dict

    @property
    def is_list(self) -> bool:
        return self.media_type in LISTS


def list_body(entries: list[dict]) -> bytes:
    """A manifest list's bytes, deterministic: the same entries give the same digest."""
    doc = {"schemaVersion": 2, "mediaType": MANIFEST_LIST,
           "manifests": sorted(entries, key=lambda e: (e["platform"]["os"], e["platform"]["architecture"]))}
    return json.dumps(doc, indent=3, sort_keys=True).encode()


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Registry:
    """One registry host. Plain HTTP only on loopback (as Docker allows by default), HTTPS elsewhere."""

    def __init__(self, host: str, creds: Optional[Credentials] = None, timeout: float = 60):
        self.host, self.creds, self.timeout = host, creds, timeout
        self.base = f"{'http' if is_loopback(host) else 'https'}://{host}/v2"
        self.session = requests.Session()
        self._token: dict[str, str] = {}

    # --- transport ------------------------------------------------------------------------
    def _request(self, method: str, path: str, scope: str, **kwargs) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))
        for attempt in range(2):
            if scope in self._token:
                headers["Authorization"] = self._token[scope]
            try:
                response = self.session.request(method, f"{self.base}{path}", headers=headers,
                                                timeout=self.timeout, **kwargs)
            except requests.RequestException as exc:
                raise PublishError(f"registry {self.host} is not reachable: {type(exc).__name__}",
                                   hint="check the host and port of --registry") from None
            if response.status_code != 401 or attempt:
                break
            self._token[scope] = self._authorise(response.headers.get("WWW-Authenticate", ""), scope)
        if response.status_code == 401:
            raise self._auth_error()
        if response.status_code == 403:
            raise RegistryAuthError(f"registry {self.host} denied {method} {path} to "
                                    f"{self.creds.username if self.creds else 'anonymous'}",
                                    hint="check that the account may push to this namespace")
        return response

    def _auth_error(self) -> RegistryAuthError:
        if self.creds is None:
            return RegistryAuthError(
                f"registry {self.host} requires credentials and none were given",
                hint=f"set {USER_ENV} and {PASSWORD_ENV}, or run `docker login {self.host}`")
        return RegistryAuthError(f"registry {self.host} refused the credentials of user '{self.creds.username}'",
                                 hint=f"check {USER_ENV}/{PASSWORD_ENV} or your `docker login {self.host}`")

    def _authorise(self, challenge: str, scope: str) -> str:
        if self.creds is None:
            raise self._auth_error()
        kind, _, params = challenge.partition(" ")
        if kind.lower() == "basic":
            return requests.auth._basic_auth_str(self.creds.username, self.creds.password)
        if kind.lower() == "bearer":
            fields = dict(re.findall(r'(\w+)="([^"]*)"', params))
            try:
                params = {"service": fields.get("service", "")} | ({"scope": scope} if scope else {})
                response = self.session.get(fields["realm"], timeout=self.timeout, params=params,
                                            auth=(self.creds.username, self.creds.password))
            except requests.RequestException as exc:
                raise PublishError(f"token service of {self.host} is not reachable: {type(exc).__name__}") from None
            if response.status_code != 200:
                raise self._auth_error()
            body = response.json()
            return f"Bearer {body.get('token') or body.get('access_token')}"
        raise PublishError(f"registry {self.host} asks for an unsupported authentication: {kind or 'none'}")

    @staticmethod
    def _scope(name: str, push: bool = False) -> str:
        return f"repository:{name}:{'pull,push' if push else 'pull'}"

    # --- API --------------------------------------------------------------------------------
    def check(self) -> None:
        """Fail now, clearly, if the registry is unreachable or refuses us."""
        response = self._request("GET", "/", "")
        if response.status_code != 200:
            raise PublishError(f"registry {self.host} answered {response.status_code} on /v2/")

    def check_push(self, name: str) -> None:
        """Fail with RegistryAuthError if the registry answers 401 or 403 to starting an upload to `name`:
        how a refused push is told from other failures (the Docker daemon only passes on a message).
        The empty upload is cancelled again."""
        scope = self._scope(name, push=True)
        response = self._request("POST", f"/{name}/blobs/uploads/", scope)
        location = response.headers.get("Location", "")
        if response.status_code == 202 and location:
            url = location if location.startswith("http") else f"{self.base.rsplit('/v2', 1)[0]}{location}"
            try:
                self.session.delete(url, timeout=self.timeout, headers={"Authorization": self._token[scope]}
                                    if scope in self._token else {})
            except requests.RequestException:
                pass   # an abandoned empty upload is garbage-collected by the registry

    def manifest(self, name: str, reference: str) -> Optional[Manifest]:
        """The manifest (or list) a tag or digest names; None if there is none."""
        response = self._request("GET", f"/{name}/manifests/{reference}", self._scope(name),
                                 headers={"Accept": ACCEPT})
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise PublishError(f"registry {self.host}: GET {name}:{reference} answered {response.status_code}")
        data = response.content
        return Manifest(response.headers.get("Docker-Content-Digest") or digest_of(data),
                        response.headers.get("Content-Type", "").split(";")[0], len(data), json.loads(data))

    def config(self, name: str, manifest: Manifest) -> dict:
        """The image config (architecture, os, labels) of a single-image manifest."""
        digest = manifest.body["config"]["digest"]
        response = self._request("GET", f"/{name}/blobs/{digest}", self._scope(name))
        if response.status_code != 200:
            raise PublishError(f"registry {self.host}: config blob {digest} of {name} answered {response.status_code}")
        return response.json()

    def put_list(self, name: str, tag: str, entries: list[dict]) -> str:
        """Put a manifest list under a tag; returns its digest."""
        body = list_body(entries)
        response = self._request("PUT", f"/{name}/manifests/{tag}", self._scope(name, push=True),
                                 data=body, headers={"Content-Type": MANIFEST_LIST})
        if response.status_code not in (200, 201):
            raise PublishError(f"registry {self.host}: putting the manifest list {name}:{tag} answered "
                               f"{response.status_code}: {response.text[:300]}")
        return response.headers.get("Docker-Content-Digest") or digest_of(body)

    def tags(self, name: str) -> list[str]:
        response = self._request("GET", f"/{name}/tags/list", self._scope(name))
        if response.status_code == 404:
            return []
        if response.status_code != 200:
            raise PublishError(f"registry {self.host}: tags of {name} answered {response.status_code}")
        return sorted(response.json().get("tags") or [])
