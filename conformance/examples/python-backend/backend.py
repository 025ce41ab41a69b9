#!/usr/bin/env python3
"""A ServerBootConfiguration boot backend in ~500 lines of Python: what a backend must do to pass the
metal-harness conformance suite (profiles `core` and `boot`), written to be read.

The contract in one paragraph: watch ServerBootConfigurations (SBCs), their ignition Secrets and the Servers
they name. For each SBC, resolve `spec.image` through the OCI distribution API (HTTPS, anonymous, bearer-token
challenge answered), pick the kernel and initrd layers for the architecture, read the ignition Secret from the
SBC's own namespace, publish a boot record for the Server's systemUUID, and only then write
`status.state: Ready`, with a condition stamped with the SBC's generation. Anything missing is `Error` with a
reason, retried with backoff and re-checked when the Secret, Server or spec changes. A new generation drops
Ready (to `Pending`) before it is Ready again. The boot server serves `/ipxe/<uuid>`, `/ignition/<uuid>` and
`/image?imageName=…&version=…&layerDigest=…` (boot-operator's URL shapes) only for the SBC the Server
references, and only while that SBC exists at the generation the record was made for. Nothing is created in
the API, so deletion needs no cleanup and no finalizer.

Run it: backend.py --kubeconfig KUBECONFIG --listen 127.0.0.1:8082 --registry ghcr.io [--ca-file CA.pem]
"""

import argparse
import base64
import collections
import hashlib
import heapq
import http.server
import json
import logging
import re
import threading
import time
import urllib.parse
from datetime import datetime, timezone

import requests
import yaml
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

GROUP, VERSION = "metal.ironcore.dev", "v1alpha1"
SBCS, SERVERS = "serverbootconfigurations", "servers"
MANIFEST_ACCEPT = ", ".join([
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])
# Layer media types boot-operator selects (current ironcore names first, then the legacy GardenLinux ones).
LAYER_TYPES = {
    "kernel": ("application/vnd.ironcore.image.kernel", "application/io.gardenlinux.kernel"),
    "initrd": ("application/vnd.ironcore.image.initramfs", "application/io.gardenlinux.initrd"),
    "squashfs": ("application/vnd.ironcore.image.squashfs", "application/io.gardenlinux.squashfs"),
}
BOOT_CONDITION = "BootReady"  # ours: True when this generation's boot record is served
IMAGE_CONDITION = "ImageValidation"  # boot-operator's: False while the image fails
BUTANE_TO_IGNITION = {"1.0.0": "3.0.0", "1.1.0": "3.1.0", "1.2.0": "3.2.0", "1.3.0": "3.2.0",
                      "1.4.0": "3.3.0", "1.5.0": "3.4.0", "1.6.0": "3.5.0"}
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
HTTP_TIMEOUT = 10  # seconds, every registry and API request (`_request_timeout=` on each API call)
log = logging.getLogger("python-backend")


class BackendError(Exception):
    """Why an SBC cannot be Ready: `reason` is the condition's reason, the message says what to fix."""

    def __init__(self, reason, message, image_problem=False):
        super().__init__(message)
        self.reason, self.image_problem = reason, image_problem


# --- The registry: the distribution API over HTTPS, as containerd's resolver speaks it -----------------------

def parse_reference(image):
    """`host[:port]/repo[:tag][@digest]` → (host, repo, tag-or-digest). The host is required."""
    name, _, digest = image.partition("@")
    host, slash, rest = name.partition("/")
    if not slash or not ("." in host or ":" in host or host == "localhost"):
        raise BackendError("InvalidImageReference", f"{image!r} names no registry host", True)
    repo, tag = rest, "latest"
    if ":" in rest.rsplit("/", 1)[-1]:
        repo, tag = rest.rsplit(":", 1)
    return host, repo, digest or tag


class Registry:
    def __init__(self, scheme, ca_file):
        self.scheme = scheme
        self.session = requests.Session()
        # With no --ca-file, requests reads REQUESTS_CA_BUNDLE, which `certify --embedded` sets.
        self.session.verify = ca_file or True
        self.tokens = {}  # (host, repo) -> bearer token

    def _get(self, host, repo, path, method="GET", headers=None, stream=False):
        url = f"{self.scheme}://{host}/v2/{repo}/{path}"
        for attempt in (1, 2):
            sent = dict(headers or {})
            if (host, repo) in self.tokens:
                sent["Authorization"] = f"Bearer {self.tokens[host, repo]}"
            try:
                response = self.session.request(method, url, headers=sent, stream=stream,
                                                timeout=HTTP_TIMEOUT, allow_redirects=True)
            except requests.exceptions.SSLError as e:
                raise BackendError("RegistryUnreachable", f"{url}: TLS verification failed ({e}); "
                                   "pass --ca-file or set REQUESTS_CA_BUNDLE") from e
            except requests.RequestException as e:
                raise BackendError("RegistryUnreachable", f"{url}: {e}") from e
            if response.status_code == 401 and attempt == 1 and self._authenticate(response, host, repo):
                continue
            return response

    def _authenticate(self, response, host, repo):
        """Answers `WWW-Authenticate: Bearer realm=…,service=…,scope=…` with an anonymous token."""
        challenge = response.headers.get("WWW-Authenticate", "")
        if not challenge.lower().startswith("bearer "):
            return False
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        query = {"service": params.get("service", ""), "scope": params.get("scope", f"repository:{repo}:pull")}
        try:
            answer = self.session.get(params["realm"], params=query, timeout=HTTP_TIMEOUT)
            answer.raise_for_status()
            body = answer.json()
        except (KeyError, ValueError, requests.RequestException) as e:
            raise BackendError("RegistryUnauthorized", f"token request to {params.get('realm')}: {e}") from e
        self.tokens[host, repo] = body.get("token") or body.get("access_token")
        log.info("bearer token for %s/%s from %s", host, repo, params["realm"])
        return True

    def manifest(self, host, repo, reference):
        response = self._get(host, repo, f"manifests/{reference}", headers={"Accept": MANIFEST_ACCEPT})
        where = f"{host}/{repo}:{reference}"
        if response.status_code == 404:
            raise BackendError("ImageNotFound", f"{where}: {registry_error(response)}", True)
        if response.status_code != 200:
            raise BackendError("RegistryError", f"{where}: HTTP {response.status_code} "
                               f"{registry_error(response)}", True)
        digest = "sha256:" + hashlib.sha256(response.content).hexdigest()
        announced = response.headers.get("Docker-Content-Digest", digest)
        if announced != digest or (reference.startswith("sha256:") and reference != digest):
            raise BackendError("ImageCorrupt", f"{where}: manifest hashes to {digest}, announced {announced}", True)
        return response.json()

    def resolve(self, image, architecture):
        """The kernel/initrd/squashfs layers of `image` for `architecture`, each checked downloadable."""
        host, repo, reference = parse_reference(image)
        manifest = self.manifest(host, repo, reference)
        if "manifests" in manifest:  # an index: legacy GardenLinux annotations first, then the platform
            entries = manifest["manifests"]
            chosen = next((m for m in entries
                           if m.get("annotations", {}).get("cname", "").startswith("metal_pxe")
                           and m["annotations"].get("architecture") == architecture), None) \
                or next((m for m in entries if m.get("platform", {}).get("architecture") == architecture), None)
            if chosen is None:
                offered = sorted({m.get("platform", {}).get("architecture", "?") for m in entries})
                raise BackendError("NoManifestForArchitecture",
                                   f"{image} has no {architecture} manifest (offers {', '.join(offered)})", True)
            manifest = self.manifest(host, repo, chosen["digest"])
        layers = {}
        for kind, media_types in LAYER_TYPES.items():
            layer = next((l for l in manifest.get("layers", []) if l.get("mediaType") in media_types), None)
            if layer is not None:
                layers[kind] = layer
        missing = [kind for kind in ("kernel", "initrd") if kind not in layers]
        if missing:
            raise BackendError("LayerMissing", f"{image} ({architecture}) has no {' or '.join(missing)} layer", True)
        for kind, layer in layers.items():  # Ready promises the machine can download them: check now
            head = self._get(host, repo, f"blobs/{layer['digest']}", method="HEAD")
            if head.status_code != 200 or head.headers.get("Content-Length") != str(layer["size"]):
                raise BackendError("LayerUnavailable", f"{image}: {kind} blob {layer['digest']} answers "
                                   f"HTTP {head.status_code}, Content-Length {head.headers.get('Content-Length')}", True)
        return host, repo, reference, layers

    def open_blob(self, host, repo, digest):
        return self._get(host, repo, f"blobs/{digest}", stream=True)


def registry_error(response):
    try:
        return "; ".join(f"{e['code']}: {e['message']}" for e in response.json()["errors"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200]


# --- Ignition: served as stored, or translated from Butane when the Secret says `format: fcos` -----------------

def butane_to_ignition(text):
    """The fcos Butane subset people put in Secrets (files, users, units) → Ignition 3.x JSON."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise BackendError("IgnitionInvalid", f"Butane is not YAML: {e}") from e
    if not isinstance(doc, dict) or doc.get("variant") != "fcos" or doc.get("version") not in BUTANE_TO_IGNITION:
        raise BackendError("IgnitionInvalid", "Butane must be variant fcos, version 1.0.0 to 1.6.0")
    ignition = {"ignition": {"version": BUTANE_TO_IGNITION[doc["version"]]}}
    for key, value in doc.items():
        if key in ("variant", "version"):
            continue
        if key not in ("storage", "passwd", "systemd"):
            raise BackendError("IgnitionInvalid", f"Butane section {key!r} is not supported by this example")
        ignition[key] = camel_case(value)
    for file in ignition.get("storage", {}).get("files", []):
        contents = file.get("contents", {})
        if "inline" in contents:  # Butane's inline text becomes a data URL, as the butane tool writes it
            contents["source"] = "data:," + urllib.parse.quote(contents.pop("inline"), safe="")
    return json.dumps(ignition).encode()


def camel_case(value):
    if isinstance(value, dict):
        return {re.sub(r"_(\w)", lambda m: m.group(1).upper(), k): camel_case(v) for k, v in value.items()}
    if isinstance(value, list):
        return [camel_case(v) for v in value]
    return value


# --- The work queue: one worker per key at a time, retries with backoff --------------------------------------

class WorkQueue:
    """controller-runtime's work queue in miniature: a key added while a worker holds it runs again after."""

    def __init__(self):
        self.cv = threading.Condition()
        self.ready, self.queued, self.active, self.dirty = collections.deque(), set(), set(), set()
        self.delayed, self.due = [], {}

    def add(self, key):
        with self.cv:
            self._add(key)

    def _add(self, key):  # with self.cv held
        if key in self.active:
            self.dirty.add(key)
        elif key not in self.queued:
            self.queued.add(key)
            self.ready.append(key)
            self.cv.notify()

    def add_after(self, key, seconds):
        with self.cv:
            due = time.monotonic() + seconds
            if self.due.get(key, float("inf")) > due:
                self.due[key] = due
                heapq.heappush(self.delayed, (due, key))
                self.cv.notify()

    def get(self):
        with self.cv:
            while True:
                now = time.monotonic()
                while self.delayed and self.delayed[0][0] <= now:
                    due, key = heapq.heappop(self.delayed)
                    if self.due.get(key) == due:  # else superseded by an earlier retry
                        del self.due[key]
                        self._add(key)
                if self.ready:
                    key = self.ready.popleft()
                    self.queued.discard(key)
                    self.active.add(key)
                    return key
                self.cv.wait(self.delayed[0][0] - now if self.delayed else None)

    def done(self, key):
        with self.cv:
            self.active.discard(key)
            if key in self.dirty:
                self.dirty.discard(key)
                self._add(key)


# --- The controller -----------------------------------------------------------------------------------------

class Backend:
    def __init__(self, args):
        configuration = client.Configuration()
        config.load_kube_config(config_file=args.kubeconfig, client_configuration=configuration)
        configuration.connection_pool_maxsize = 32  # watches hold connections; workers need their own
        self.api = client.ApiClient(configuration)
        self.custom, self.core = client.CustomObjectsApi(self.api), client.CoreV1Api(self.api)
        self.registry = Registry(args.registry_scheme, args.ca_file)
        self.allowed = set(args.registry)
        self.architecture = args.architecture
        self.base_url = args.public_url or f"http://{args.listen}"
        self.queue = WorkQueue()
        self.lock = threading.Lock()
        self.records = {}  # (namespace, name) -> boot record of the SBC
        self.inputs = {}  # (namespace, name) -> (server name, secret name): maps Secret/Server events to SBCs
        self.failures = collections.Counter()

    # Watches: list, then watch from the list's resourceVersion; relist on 410 Gone or any error.
    def watch_forever(self, what, list_call, on_event, *call_args):
        backoff = 0.2
        while True:
            try:
                listed = list_call(*call_args, _request_timeout=HTTP_TIMEOUT)
                items = listed["items"] if isinstance(listed, dict) else listed.items
                version = listed["metadata"]["resourceVersion"] if isinstance(listed, dict) \
                    else listed.metadata.resource_version
                for item in items:
                    on_event("ADDED", item)
                backoff = 0.2
                stream = watch.Watch()
                while True:  # each watch request ends after timeout_seconds; continue from the last version seen
                    for event in stream.stream(list_call, *call_args, resource_version=version,
                                               timeout_seconds=60, allow_watch_bookmarks=True,
                                               _request_timeout=90):
                        if event["type"] == "ERROR":
                            raise ApiException(status=event["raw_object"].get("code"), reason="watch error")
                        if event["type"] != "BOOKMARK":
                            on_event(event["type"], event["object"])
                    version = stream.resource_version or version
            except Exception as e:  # noqa: BLE001 - a watch must survive anything; 410 included
                log.warning("%s watch: %s; relisting in %.1fs", what, " ".join(str(e).split()), backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 5)

    def on_sbc(self, kind, sbc):
        key = (sbc["metadata"]["namespace"], sbc["metadata"]["name"])
        spec = sbc.get("spec", {})
        with self.lock:
            if kind == "DELETED":
                self.inputs.pop(key, None)
                self.records.pop(key, None)  # stop serving at once
            else:
                self.inputs[key] = (spec.get("serverRef", {}).get("name"),
                                    (spec.get("ignitionSecretRef") or {}).get("name"))
        self.queue.add(key)

    def on_secret(self, _kind, secret):
        namespace, name = secret.metadata.namespace, secret.metadata.name
        with self.lock:
            keys = [k for k, (_, s) in self.inputs.items() if k[0] == namespace and s == name]
        for key in keys:
            self.queue.add(key)

    def on_server(self, _kind, server):
        name = server["metadata"]["name"]
        with self.lock:
            keys = [k for k, (s, _) in self.inputs.items() if s == name]
        for key in keys:
            self.queue.add(key)

    def work_forever(self):
        while True:
            key = self.queue.get()
            try:
                self.reconcile(*key)
                self.failures.pop(key, None)
            except BackendError:
                self.failures[key] += 1  # status says why; retry with backoff (inputs may heal silently)
                self.queue.add_after(key, min(0.5 * 2 ** self.failures[key], 10))
            except ApiException as e:
                if e.status == 404:  # deleted while we worked: the watch's DELETED event has cleaned up
                    continue
                if e.status != 409:  # a conflict only means our read was stale: redo at once
                    log.warning("reconcile %s/%s: API error %s", *key, e.status)
                self.queue.add_after(key, 0.1 if e.status == 409 else 1)
            except Exception:  # noqa: BLE001 - one bad SBC must not stop the worker
                log.exception("reconcile %s/%s failed", *key)
                self.queue.add_after(key, 2)
            finally:
                self.queue.done(key)

    def reconcile(self, namespace, name):
        try:
            sbc = self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, SBCS, name,
                                                           _request_timeout=HTTP_TIMEOUT)
        except ApiException as e:
            if e.status == 404:
                with self.lock:
                    self.records.pop((namespace, name), None)
                return
            raise
        if sbc["metadata"].get("deletionTimestamp"):
            with self.lock:
                self.records.pop((namespace, name), None)
            return
        generation = sbc["metadata"]["generation"]
        status = sbc.get("status") or {}
        ours = find_condition(status, BOOT_CONDITION)
        if status.get("state") == "Ready" and (ours or {}).get("observedGeneration") != generation:
            # A new spec: never carry Ready across generations.
            sbc = self.write_status(sbc, "Pending", "Unknown", "Preparing", f"preparing generation {generation}")
        try:
            record = self.prepare(sbc)
        except BackendError as e:
            with self.lock:
                self.records.pop((namespace, name), None)
            self.write_status(sbc, "Error", "False", e.reason, str(e), image_problem=e.image_problem)
            raise
        with self.lock:
            self.records[(namespace, name)] = record  # served before anyone can see Ready
        self.write_status(sbc, "Ready", "True", "BootArtifactsServed",
                          f"serving {sbc['spec']['image']} to {record['uuid']}")

    def prepare(self, sbc):
        namespace, spec = sbc["metadata"]["namespace"], sbc["spec"]
        server_name = spec.get("serverRef", {}).get("name", "")
        try:
            server = self.custom.get_cluster_custom_object(GROUP, VERSION, SERVERS, server_name,
                                                        _request_timeout=HTTP_TIMEOUT)
        except ApiException as e:
            if e.status == 404:
                raise BackendError("ServerNotFound", f"Server {server_name!r} does not exist") from e
            raise
        uuid = server.get("spec", {}).get("systemUUID")
        if not uuid:
            raise BackendError("ServerHasNoSystemUUID", f"Server {server_name!r} has no spec.systemUUID")
        ignition = None
        secret_name = (spec.get("ignitionSecretRef") or {}).get("name")
        if secret_name:  # only ever from the SBC's own namespace
            try:
                secret = self.core.read_namespaced_secret(secret_name, namespace, _request_timeout=HTTP_TIMEOUT)
            except ApiException as e:
                if e.status == 404:
                    raise BackendError("IgnitionSecretNotFound",
                                       f"Secret {namespace}/{secret_name} does not exist") from e
                raise
            data = secret.data or {}
            if "ignition" not in data:
                raise BackendError("IgnitionKeyMissing", f"Secret {namespace}/{secret_name} has no key 'ignition'")
            ignition = base64_decode(data["ignition"])
            if base64_decode(data.get("format", "")) == b"fcos":
                ignition = butane_to_ignition(ignition.decode("utf-8", "replace"))
        image = spec.get("image") or ""
        host = image.split("/", 1)[0]
        if host not in self.allowed:
            raise BackendError("RegistryNotAllowed",
                               f"registry {host!r} is not allowed (allowed: {', '.join(sorted(self.allowed))})", True)
        host, repo, reference, layers = self.registry.resolve(image, self.architecture)

        def url(kind):
            query = urllib.parse.urlencode({"imageName": f"{host}/{repo}", "version": reference,
                                            "layerDigest": layers[kind]["digest"]})
            return f"{self.base_url}/image?{query}"

        return {"generation": sbc["metadata"]["generation"], "uuid": uuid.lower(), "ignition": ignition,
                "kernel": url("kernel"), "initrd": url("initrd"),
                "squashfs": url("squashfs") if "squashfs" in layers else None}

    def write_status(self, sbc, state, condition_status, reason, message, image_problem=False):
        """Merge-patches status (guarded by resourceVersion); skips the write when nothing would change."""
        generation, status = sbc["metadata"]["generation"], sbc.get("status") or {}
        old = status.get("conditions") or []
        conditions = [c for c in old if c["type"] not in (BOOT_CONDITION, IMAGE_CONDITION)]  # keep others'
        conditions.append(condition(old, BOOT_CONDITION, condition_status, reason, message, generation))
        if image_problem:  # boot-operator's condition, for tools that look for it
            conditions.append(condition(old, IMAGE_CONDITION, "False", "ValidationFailed", message, generation))
        if status.get("state") == state and conditions == old:
            return sbc
        body = {"metadata": {"resourceVersion": sbc["metadata"]["resourceVersion"]},
                "status": {"state": state, "conditions": conditions}}
        log.info("%s/%s generation %s: %s (%s)", sbc["metadata"]["namespace"], sbc["metadata"]["name"],
                 generation, state, reason)
        return self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, sbc["metadata"]["namespace"], SBCS, sbc["metadata"]["name"], body,
            _request_timeout=HTTP_TIMEOUT)

    # Serving: a fresh read of the Server and the SBC at request time, so a moved bootConfigurationRef or a
    # deleted SBC is honoured at once. (A big fleet would serve from watch caches instead.)
    def record_for(self, uuid):
        servers = self.custom.list_cluster_custom_object(GROUP, VERSION, SERVERS,
                                                      _request_timeout=HTTP_TIMEOUT)["items"]
        server = next((s for s in servers if s.get("spec", {}).get("systemUUID", "").lower() == uuid.lower()), None)
        ref = (server or {}).get("spec", {}).get("bootConfigurationRef") or {}
        key = (ref.get("namespace"), ref.get("name"))
        with self.lock:
            record = self.records.get(key)
        if record is None:
            return None
        try:
            sbc = self.custom.get_namespaced_custom_object(GROUP, VERSION, key[0], SBCS, key[1],
                                                           _request_timeout=HTTP_TIMEOUT)
        except ApiException:
            return None
        current = sbc["metadata"]["generation"] == record["generation"] and not sbc["metadata"].get("deletionTimestamp")
        return record if current else None


def find_condition(status, kind):
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), None)


def condition(old, kind, status, reason, message, generation):
    previous = next((c for c in old if c["type"] == kind), None)
    changed = previous is None or previous["status"] != status
    return {"type": kind, "status": status, "reason": reason, "message": message[:1000],
            "observedGeneration": generation,
            "lastTransitionTime": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            if changed else previous["lastTransitionTime"]}


def base64_decode(value):
    return base64.b64decode(value) if value else b""


# --- The boot server ----------------------------------------------------------------------------------------

def ipxe_script(backend, record):
    args = "initrd=initramfs console=ttyS0,115200"
    if record["ignition"] is not None:
        args += " ignition.firstboot=1 ignition.platform.id=metal ignition.config.url=${boot-server}/ignition/${uuid}"
    if record["squashfs"]:
        args += f" gl.ovl=/:tmpfs gl.url={record['squashfs']} gl.live=1 ip=dhcp"
    return (f"#!ipxe\nset boot-server {backend.base_url}\n"
            f"kernel {record['kernel']} {args}\n"
            f"initrd --name initramfs {record['initrd']}\nboot\n").encode()


def make_handler(backend):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            log.debug("%s %s", self.address_string(), fmt % args)

        def answer(self, status, body, content_type="text/plain"):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_HEAD(self):
            self.do_GET()

        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            try:
                if url.path.startswith("/ipxe/") or url.path.startswith("/ignition/"):
                    record = backend.record_for(url.path.rsplit("/", 1)[1])
                    if record is None:
                        return self.answer(404, b"no boot configuration for this machine\n")
                    if url.path.startswith("/ipxe/"):
                        return self.answer(200, ipxe_script(backend, record))
                    if record["ignition"] is None:
                        return self.answer(404, b"this machine has no ignition\n")
                    return self.answer(200, record["ignition"], "application/json")
                if url.path == "/image":
                    return self.proxy_layer(urllib.parse.parse_qs(url.query))
                if url.path == "/healthz":
                    return self.answer(200, b"ok\n")
                self.answer(404, b"not found\n")
            except Exception as e:  # noqa: BLE001 - answer, do not drop the connection
                log.exception("serving %s", self.path)
                self.answer(500, f"{e}\n".encode())

        def proxy_layer(self, query):
            """Streams a layer blob from the registry: boot-operator's image proxy."""
            image, digest = query.get("imageName", [""])[0], query.get("layerDigest", [""])[0]
            host, _, repo = image.partition("/")
            if host not in backend.allowed or not repo:
                return self.answer(403, f"registry {host!r} is not allowed\n".encode())
            if not DIGEST.match(digest):
                return self.answer(400, b"layerDigest must be sha256:<64 hex>\n")
            try:
                upstream = backend.registry.open_blob(host, repo, digest)
            except BackendError as e:
                return self.answer(502, f"{e}\n".encode())
            with upstream:
                if upstream.status_code != 200:
                    return self.answer(502, f"registry answered {upstream.status_code}\n".encode())
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", upstream.headers["Content-Length"])
                self.send_header("Docker-Content-Digest", digest)
                self.end_headers()
                if self.command == "HEAD":
                    return None
                for chunk in upstream.iter_content(64 * 1024):
                    self.wfile.write(chunk)
            return None

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubeconfig", help="default: $KUBECONFIG or ~/.kube/config")
    parser.add_argument("--listen", default="127.0.0.1:8082", help="boot server address (host:port)")
    parser.add_argument("--public-url", help="base URL machines reach the boot server at (default http://LISTEN)")
    parser.add_argument("--registry", action="append", required=True,
                        help="an allowed registry host[:port] (repeatable); images from others are refused")
    parser.add_argument("--registry-scheme", choices=["https", "http"], default="https")
    parser.add_argument("--ca-file", help="PEM bundle to verify registries with (default: REQUESTS_CA_BUNDLE or the system)")
    parser.add_argument("--architecture", default="amd64")
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    backend = Backend(args)
    host, port = args.listen.rsplit(":", 1)
    server = http.server.ThreadingHTTPServer((host, int(port)), make_handler(backend))
    server.daemon_threads = True
    watches = [
        ("ServerBootConfiguration", backend.custom.list_cluster_custom_object, backend.on_sbc, GROUP, VERSION, SBCS),
        ("Secret", backend.core.list_secret_for_all_namespaces, backend.on_secret),
        ("Server", backend.custom.list_cluster_custom_object, backend.on_server, GROUP, VERSION, SERVERS),
    ]
    for what, call, handler, *call_args in watches:
        threading.Thread(target=backend.watch_forever, args=(what, call, handler, *call_args), daemon=True).start()
    for _ in range(args.workers):
        threading.Thread(target=backend.work_forever, daemon=True).start()
    log.info("boot server on %s, registries %s over %s", backend.base_url, sorted(backend.allowed), args.registry_scheme)
    server.serve_forever()


if __name__ == "__main__":
    main()
