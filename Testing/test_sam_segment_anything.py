"""Meta's SAM backend plumbing with an UNTRAINED ViT-B (``sam_model_registry['vit_b'](checkpoint=None)``):
no SAM weights can be fetched here, so these tests check shapes, prompt kinds, multimask, mask
prompts and coordinate handling, never mask quality (an untrained model's masks are noise)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("segment_anything")
torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def sam():
    from SamPromptLib.backends import create_backend

    torch.manual_seed(0)
    return create_backend("sam-vit_b", allow_untrained=True)


@pytest.fixture(scope="module")
def embedding(sam):
    # A 40 x 300 slice with 2:1 mm pixels (rows:columns), like a coronal slice of a thick-slice CT.
    rng = np.random.default_rng(0)
    return sam.set_image(rng.random((40, 300), dtype=np.float32), spacing=(2.0, 1.0))


def test_untrained_needs_explicit_permission():
    from SamPromptLib.backends import create_backend

    with pytest.raises(ValueError, match="checkpoint"):
        create_backend("sam-vit_b")
    with pytest.raises(FileNotFoundError):
        create_backend("sam-vit_b", checkpoint="/nonexistent/sam_vit_b.pth")


def test_embedding_and_aspect_preserving_plan(sam, embedding):
    assert sam.describe()["trained"] is False
    assert embedding.features.shape == (1, 256, 64, 64)
    # 40 rows x 2 mm = 80 mm, 300 columns x 1 mm = 300 mm: the longest side becomes 1024 pixels.
    assert embedding.plan.resized == (273, 1024) and embedding.plan.original == (40, 300)


@pytest.mark.parametrize("prompt", [
    dict(box=(20, 5, 120, 30)),
    dict(points=[(60, 20)], labels=[1]),
    dict(points=[(60, 20), (200, 10)], labels=[1, 0]),
    dict(box=(20, 5, 120, 30), points=[(60, 20), (100, 25)], labels=[1, 0]),
])
def test_prompt_kinds_give_slice_grid_masks(sam, embedding, prompt):
    single = sam.predict(embedding, **prompt)
    assert single.masks.shape == (1, 40, 300) and single.masks.dtype == bool
    assert single.low_res_logits.shape == (1, 256, 256) and single.scores.shape == (1,)
    assert np.array_equal(single.masks, single.logits > 0)
    multi = sam.predict(embedding, multimask=True, **prompt)
    assert multi.masks.shape == (3, 40, 300) and multi.scores.shape == (3,)


def test_mask_prompt_changes_the_answer(sam, embedding):
    first = sam.predict(embedding, box=(20, 5, 120, 30))
    again = sam.predict(embedding, box=(20, 5, 120, 30), mask_input=first.low_res_logits[0])
    assert not np.allclose(first.logits, again.logits)


def test_decoder_matches_segment_anything_predictor(sam, embedding):
    """Our prompt decoder gives what SAM's own prompt encoder + mask decoder give for the same prompt."""
    model = sam._sam
    coords = torch.tensor([[[60.0, 20.0]]]) * torch.tensor([1024 / 300, 273 / 40])
    box = torch.tensor([[20.0, 5.0, 120.0, 30.0]]) * torch.tensor([1024 / 300, 273 / 40] * 2)
    with torch.inference_mode():
        sparse, dense = model.prompt_encoder(points=(coords, torch.tensor([[1.0]])), boxes=box, masks=None)
        low_res, iou = model.mask_decoder(image_embeddings=torch.from_numpy(embedding.features),
                                          image_pe=model.prompt_encoder.get_dense_pe(),
                                          sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                          multimask_output=False)
    ours = sam.predict(embedding, box=(20, 5, 120, 30), points=[(60, 20)], labels=[1])
    assert np.abs(ours.low_res_logits - low_res[0].numpy()).max() < 1e-4
    assert abs(float(ours.scores[0]) - float(iou[0, 0])) < 1e-4


def test_box_only_litemedsam_refuses_points_but_sam_takes_them(sam):
    from SamPromptLib.backends.litemedsam import LiteMedSamBackend

    assert sam.supports_points and sam.supports_mask_input
    assert not LiteMedSamBackend.supports_points and not LiteMedSamBackend.supports_mask_input
