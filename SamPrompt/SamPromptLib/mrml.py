"""The MRML/VTK side of SAM Prompt: oriented images to Volumes and masks back to labelmaps.

The effect gets the source volume from the Segment Editor as a ``vtkOrientedImageData`` in the
segmentation's frame (no parent transform applied); the panel's precomputation builds its Volume
the same way from the node (``volume_from_node``), so both key the shared embedding cache alike.
"""
from __future__ import annotations

import numpy as np

from DicomTeamAnnotateLib.core.geometry import Geometry
from DicomTeamAnnotateLib.core.volume import Volume


def _matrix(m) -> np.ndarray:
    return np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])


def image_volume(image):
    """(Volume in LPS, extent start (i, j, k)) of a vtkOrientedImageData (a copy of its voxels)."""
    import vtk
    from vtk.util import numpy_support

    extent = image.GetExtent()
    dims = (extent[1] - extent[0] + 1, extent[3] - extent[2] + 1, extent[5] - extent[4] + 1)
    # a copy: a worker thread must not read memory that Slicer may reallocate meanwhile
    array = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(dims[::-1]).copy()
    m = vtk.vtkMatrix4x4()
    image.GetImageToWorldMatrix(m)
    ijk_to_ras = _matrix(m)
    start = np.array(extent[0::2], dtype=float)
    ijk_to_ras[:3, 3] = ijk_to_ras[:3, :3] @ start + ijk_to_ras[:3, 3]
    return Volume(array, Geometry.from_matrix(ijk_to_ras, dims, space="RAS").to_lps()), extent[0::2]


def node_image(volume_node):
    """The volume node's voxels as a vtkOrientedImageData in the node's own frame (no parent transform)."""
    import slicer
    import vtk

    image = slicer.vtkOrientedImageData()
    image.ShallowCopy(volume_node.GetImageData())
    m = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(m)
    image.SetImageToWorldMatrix(m)
    return image


def volume_from_node(volume_node) -> Volume:
    """What the effect sees of this volume when it is the segmentation's source (same cache key)."""
    return image_volume(node_image(volume_node))[0]


def labelmap_like(image, mask_kji):
    """A vtkOrientedImageData with ``image``'s geometry and extent holding a uint8 (K, J, I) mask."""
    import slicer
    import vtk
    from vtk.util import numpy_support

    out = slicer.vtkOrientedImageData()
    out.SetExtent(image.GetExtent())
    out.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    numpy_support.vtk_to_numpy(out.GetPointData().GetScalars())[:] = np.ascontiguousarray(mask_kji, np.uint8).ravel()
    m = vtk.vtkMatrix4x4()
    image.GetImageToWorldMatrix(m)
    out.SetImageToWorldMatrix(m)
    return out


def view_normal_axis(slice_node, image, parent_transform_node=None):
    """(axis 0/1/2 of the image's IJK the view looks along, how aligned 0..1).

    The view's normal is in world coordinates; the image is in the segmentation's frame: a parent
    transform of the segmentation is undone first (its linear part), as Slicer's effects do.
    """
    import vtk

    normal = _matrix(slice_node.GetSliceToRAS())[:3, 2]
    if parent_transform_node is not None:
        to_local = vtk.vtkMatrix4x4()
        if parent_transform_node.GetMatrixTransformFromWorld(to_local):
            normal = _matrix(to_local)[:3, :3] @ normal
    m = vtk.vtkMatrix4x4()
    image.GetImageToWorldMatrix(m)
    ijk_to_ras = _matrix(m)[:3, :3]
    normal_ijk = np.linalg.solve(ijk_to_ras, normal) * np.linalg.norm(ijk_to_ras, axis=0)
    normal_ijk /= np.linalg.norm(normal_ijk)
    axis = int(np.argmax(np.abs(normal_ijk)))
    return axis, float(abs(normal_ijk[axis]))
