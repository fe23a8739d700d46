"""The ``remote`` backend: prompts answered by the project server's SAM (``dicomteam serve`` with the
``sam`` plugin, see SamPromptLib/server_plugin.py), on its GPU or CPU, for the whole team.

Used like a local backend, through ``SamSegmenter``::

    seg = SamSegmenter(None, "remote", store="http://server:8765", case="case-007", user="alice",
                       token=token)            # or pass the local Volume to check it is the same image
    seg.segment_slice("axial", 10, box=(300, 200, 420, 330))
    seg.propagate("axial", {10: Prompt(box=...)}, progress=..., cancel=event)

The server holds the case image (it is in the store), the model and the embeddings; this side
sends the case id, plane, slice index, window and the prompt, never pixels, with the store's
token (an annotator may prompt only on cases assigned to them).  Masks come back exactly as the
server computed them (bits), logits as float16.  Propagation is streamed: progress as it goes,
each slice as it is kept; ``cancel`` stops it on the server.

Failures raise a ``RemoteSamError`` whose ``partial`` holds the slices received so far (a
preview to keep) and whose ``fallback`` says whether running the same locally is worth
offering: ``RemoteUnavailable`` (server unreachable or gone mid-way, no SAM there, 5xx),
``RemoteTimeout`` (no answer or no progress within the time allowed: a slow or busy device),
``RemoteOutOfMemory`` (the server's device ran out of memory); ``RemoteRefused`` (401, 403,
404, 400: token, assignment, unknown case, bad request) has ``fallback`` False.  A cancel
raises ``PropagationCancelled`` with ``partial``, as locally.
"""
from __future__ import annotations

import json
import logging
import os

import numpy as np

from DicomTeamAnnotateLib.core.geometry import Geometry
from DicomTeamAnnotateLib.core.volume import Volume
from SamPromptLib import wire
from SamPromptLib.backends import SamBackend
from SamPromptLib.preprocess import resolve_window
from SamPromptLib.propagate import PropagationCancelled

log = logging.getLogger(__name__)

PLUGIN_PATH = "/api/v1/plugins/sam"


class RemoteSamError(RuntimeError):
    """A remote SAM request failed; ``partial``: {slice: SliceResult} received; ``fallback``: offer local."""

    fallback = True

    def __init__(self, message: str, partial: dict | None = None, status: int | None = None):
        super().__init__(message)
        self.partial = dict(partial or {})
        self.status = status


class RemoteUnavailable(RemoteSamError):
    """The server cannot be reached, went away mid-way, answered 5xx, or serves no SAM."""


class RemoteTimeout(RemoteSamError):
    """No answer, or no progress, within the time allowed (a slow or busy device)."""


class RemoteOutOfMemory(RemoteSamError):
    """The server's device ran out of memory (HTTP 507)."""


class RemoteRefused(RemoteSamError):
    """The server refused the request (401, 403, 404, 400...): running it locally would not be right."""

    fallback = False


class RemoteBackend(SamBackend):
    """A case on the project server, addressed slice by slice (``addresses_slices``: see SamSegmenter)."""

    name = "remote"
    addresses_slices = True

    def __init__(self, store: str | None = None, case: str | None = None, user: str | None = None,
                 token: str | None = None, model: str | None = None, timeout=(5.0, 120.0), stall_timeout_s: float = 60.0,
                 precompute: bool = True, device: str | None = None, checkpoint=None, session=None):
        """``store``: the server URL; ``case``: the case id; ``user``/``token`` as for the store ($DICOMTEAM_USER,
        $DICOMTEAM_TOKEN); ``model``: a backend the server offers (its default if None); ``timeout``:
        (connect, answer) seconds of one prompt; ``stall_timeout_s``: longest silence of a propagation;
        ``precompute``: ask the server to embed the case's axial slices now.  ``device`` and
        ``checkpoint`` are the server's business and are ignored here."""
        import requests

        if not store or not case:
            raise ValueError("the remote backend needs the project server's URL (--store) and a case id (--case)")
        if checkpoint:
            raise ValueError("the remote backend uses the server's models: --checkpoint does not apply")
        self.url = str(store).rstrip("/")
        self.case = str(case)
        self.user = user or os.environ.get("DICOMTEAM_USER")
        token = token or os.environ.get("DICOMTEAM_TOKEN")
        if not self.user or not token:
            raise ValueError("the remote backend needs the store's user and token (--user/--token, or "
                             "$DICOMTEAM_USER/$DICOMTEAM_TOKEN)")
        self.model, self.timeout, self.stall_timeout_s = model, timeout, float(stall_timeout_s)
        self.http = session or requests.Session()
        self.http.headers.update({"Authorization": f"Bearer {token}", "X-Dicomteam-User": self.user})
        self.info = self._send("GET", f"/cases/{self.case}", params={"backend": model} if model else None).json()
        self.device = self.info.get("device")
        self.shape = tuple(int(n) for n in self.info["shape"])
        self.geometry = Geometry.from_dict(self.info["geometry"])
        self.volume_id = f"remote:{self.case}:{self.info.get('image_sha256', '')}"
        self.has_pixels = False
        capabilities = self.info.get("model") or {}
        self.supports_box = bool(capabilities.get("box", True))
        self.supports_points = bool(capabilities.get("points", False))
        self.supports_mask_input = bool(capabilities.get("mask_input", False))
        self._precompute_on_open = precompute

    # ----- HTTP ------------------------------------------------------------------------------------
    def _endpoint(self, path: str) -> str:
        return f"{self.url}{PLUGIN_PATH}{path}"

    def _raise_for(self, response, partial=None) -> None:
        """Turn an error answer into the RemoteSamError the caller can act on."""
        if response.status_code < 400:
            return
        try:
            body = response.json()
        except ValueError:
            body = {}
        detail = body.get("detail") if isinstance(body, dict) else None
        where = f"SAM on {self.url}"
        if response.status_code == 404 and not (isinstance(body, dict) and "error" in body):
            raise RemoteUnavailable(f"{where}: this server does not offer SAM (start it with the sam plugin "
                                    f"installed: pip install 'dicomteamannotate[sam,server]')", partial, 404)
        if response.status_code == 507:
            raise RemoteOutOfMemory(f"{where}: {detail or 'out of memory'}", partial, 507)
        if response.status_code >= 500:
            raise RemoteUnavailable(f"{where}: the server failed ({response.status_code}: {detail or response.reason})",
                                    partial, response.status_code)
        raise RemoteRefused(f"{where}: {detail or response.reason} ({response.status_code})", partial,
                            response.status_code)

    def _send(self, method: str, path: str, *, partial=None, **kwargs):
        import requests

        kwargs.setdefault("timeout", self.timeout)
        try:
            response = self.http.request(method, self._endpoint(path), **kwargs)
        except requests.Timeout as exc:
            raise RemoteTimeout(f"SAM on {self.url}: no answer within {kwargs['timeout']} s ({exc})", partial) from None
        except requests.RequestException as exc:
            raise RemoteUnavailable(f"SAM on {self.url}: cannot reach the server ({exc})", partial) from None
        self._raise_for(response, partial)
        return response

    def _json(self, method: str, path: str, body: dict | None = None) -> dict:
        return self._send(method, path, json=body).json()

    # ----- what SamSegmenter asks of a slice-addressed backend -------------------------------------
    def case_volume(self, volume: Volume | None) -> Volume:
        """The local volume, checked to be the server's case image grid; None: a stand-in without pixels."""
        if volume is None:
            return Volume(np.broadcast_to(np.uint8(0), self.shape), self.geometry,
                          {"case_id": self.case, "sam_remote": self.url})
        if tuple(volume.array.shape) != self.shape or not volume.geometry.same_grid(self.geometry):
            raise ValueError(f"the local volume is not case {self.case}'s image on {self.url}: "
                             + "; ".join(volume.geometry.differences(self.geometry) or
                                         [f"shape {volume.array.shape} vs {self.shape}"]))
        self.has_pixels = True
        return volume

    def resolve_window(self, window) -> tuple:
        """(level, width): the given window, or the server's default for the case (soft tissue for CT)."""
        lw = resolve_window(window)
        out = tuple(lw) if lw is not None else tuple(float(v) for v in self.info["window"])
        if self._precompute_on_open:  # the case was just opened: let the server embed it ahead
            self._precompute_on_open = False
            try:
                self.precompute("axial", out, None)
            except RemoteSamError as exc:  # a convenience; the prompt itself will say what is wrong
                log.info("remote SAM precompute not started: %s", exc)
        return out

    def _address(self, plane: str, window) -> dict:
        return {"backend": self.model, "plane": plane, "window": [float(v) for v in window]}

    def predict_slice(self, plane: str, index: int, window, prompt, mask_input=None, multimask: bool = False):
        """The server's Prediction for ``prompt`` on one slice."""
        body = {**self._address(plane, window), "index": int(index), **wire.prompt_to_json(prompt),
                "mask_input": None if mask_input is None else wire.pack_float16(np.asarray(mask_input)),
                "multimask": bool(multimask)}
        doc = self._json("POST", f"/cases/{self.case}/prompt", body)
        self.device = doc.get("device", self.device)
        return wire.prediction_from_json(doc)

    def precompute(self, plane: str, window, indices) -> int:
        """Ask the server to embed slices ahead; returns how many it queued."""
        body = {**self._address(plane, window), "indices": None if indices is None else list(indices)}
        return int(self._json("POST", f"/cases/{self.case}/precompute", body)["queued"])

    def propagate(self, plane: str, window, anchors: dict, direction: str = "both", *, extend=None, progress=None,
                  cancel=None) -> tuple:
        """({slice: SliceResult}, stops) of a propagation run by the server, streamed."""
        import requests

        body = {**self._address(plane, window), "direction": direction,
                "anchors": [{"index": int(k), **wire.prompt_to_json(p)} for k, p in sorted(anchors.items())],
                "extend": None if extend is None else [bool(extend[0]), bool(extend[1])]}
        received: dict = {}
        job, cancel_sent = None, False
        response = self._send("POST", f"/cases/{self.case}/propagate", json=body, stream=True,
                              timeout=(self.timeout[0], self.stall_timeout_s))
        try:
            for line in response.iter_lines():
                if not line:
                    continue
                event = json.loads(line)
                if "slice" in event:
                    result = wire.result_from_json(event["slice"])
                    received[result.index] = result
                elif "progress" in event and progress is not None:
                    progress(*event["progress"])
                elif "job" in event:
                    job, self.device = event["job"], event.get("device", self.device)
                elif "done" in event:
                    final = [int(k) for k in event["done"]["slices"]]
                    missing = sorted(set(final) - set(received))
                    if missing:
                        raise RemoteUnavailable(f"SAM on {self.url}: slices {missing} were announced but not sent",
                                                received)
                    return {k: received[k] for k in final}, [(int(k), why) for k, why in event["done"]["stops"]]
                elif "cancelled" in event:
                    raise PropagationCancelled(received)
                elif "error" in event:
                    kind = RemoteOutOfMemory if event.get("kind") == "SamOutOfMemory" else RemoteUnavailable
                    raise kind(f"SAM on {self.url}: {event['error']}", received)
                if cancel is not None and not cancel_sent and job is not None and (
                        cancel.is_set() if hasattr(cancel, "is_set") else cancel()):
                    cancel_sent = True
                    self._send("POST", f"/jobs/{job}/cancel", partial=received)
        except requests.Timeout:
            raise RemoteTimeout(f"SAM on {self.url}: no progress for {self.stall_timeout_s:g} s "
                                f"({len(received)} slices received)", received) from None
        except requests.RequestException as exc:
            raise RemoteUnavailable(f"SAM on {self.url}: the server went away during the propagation "
                                    f"({len(received)} slices received): {exc}", received) from None
        finally:
            response.close()
        raise RemoteUnavailable(f"SAM on {self.url}: the propagation stream ended early ({len(received)} slices "
                                f"received)", received)

    # ----- the pixel interface does not apply --------------------------------------------------------
    def set_image(self, image, spacing=None):
        """Not available: the remote backend never sends pixels (SamSegmenter addresses slices instead)."""
        raise NotImplementedError("the remote backend works on the server's case image: use SamSegmenter")

    def predict(self, embedding, box=None, points=None, labels=None, mask_input=None, multimask: bool = False):
        """Not available: see ``predict_slice``."""
        raise NotImplementedError("the remote backend works on the server's case image: use SamSegmenter")

    def describe(self) -> dict:
        return {**super().describe(), "name": self.name, "server": self.url, "case": self.case, "user": self.user,
                "device": self.device, "model": (self.info.get("model") or {}).get("name") or self.model,
                "runtime": "remote"}
