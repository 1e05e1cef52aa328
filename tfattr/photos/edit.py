"""Photo in, photo out: detect, align, run one operation on every chosen face, paste back."""

from __future__ import annotations

import dataclasses

import numpy as np

from tfattr.photos import align as align_lib
from tfattr.photos import detect as detect_lib
from tfattr.photos import operations
from tfattr.photos import paste as paste_lib


@dataclasses.dataclass
class Result:
    image: np.ndarray  # uint8 [H, W, 3], the edited photo
    mask: np.ndarray | None  # uint8 [H, W, 1] mask canvas (operations with a mask output) or None
    faces: list  # the detected source faces (largest first)
    edited: list[int]  # indices into `faces` that were edited
    crops: np.ndarray  # uint8 [N, S, S, 3] aligned source crops
    outputs: np.ndarray | None  # uint8 [N, S, S, 3] edited crops


def to_signed(images: np.ndarray) -> np.ndarray:
    return np.asarray(images, np.float32) / 127.5 - 1.0


def to_uint8(images: np.ndarray) -> np.ndarray:
    return np.clip((np.asarray(images, np.float32) + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)


def edit_photo(engine: operations.Engine, photo: np.ndarray, operation: str | None = None,
               reference: np.ndarray | None = None, request: operations.Request | None = None,
               face_index: int | None = None, reference_face_index: int = 0, template: str | None = None,
               photo_name: str = "source", reference_name: str = "reference", max_side: int = 1024,
               faces: list | None = None, reference_faces: list | None = None) -> Result:
    """Edits the faces of `photo` (uint8 RGB) with `engine`'s `operation` (default: its default).

    Args:
      face_index: edit only this face (faces are sorted largest first); None = all faces.
      reference_face_index: which face of `reference` to take attributes from.
      template: "bench" or "celeba"; default from the model's training dataset.
      faces, reference_faces: precomputed detections (skip the detector).

    Raises:
      NoFaceError naming `photo_name` / `reference_name`; OperationError for impossible requests.
    """
    request = request or operations.Request()
    operation = operation or engine.default_signature
    template = template or align_lib.template_for_dataset(engine.dataset)
    s = engine.image_size
    if operation in engine.specs and engine.needs_reference(operation) and reference is None:
        engine.inputs(operation, np.zeros([1, s, s, 3], np.float32), None, request)  # raises the clear error
    if faces is None:
        faces = detect_lib.find_faces(photo, photo_name, max_side=max_side)
    if face_index is None:
        chosen = list(range(len(faces)))
    else:
        if not 0 <= face_index < len(faces):
            raise ValueError(f"--face_index={face_index}, but {photo_name!r} has {len(faces)} face(s) "
                             f"(0..{len(faces) - 1}, largest first)")
        chosen = [face_index]
    crops, matrices = [], []
    for i in chosen:
        crop, m = align_lib.align(photo, faces[i].landmarks5, s, template)
        crops.append(crop)
        matrices.append(m)
    crops = np.stack(crops)
    ref = None
    if reference is not None:
        if reference_faces is None:
            reference_faces = detect_lib.find_faces(reference, reference_name, max_side=max_side)
        if not 0 <= reference_face_index < len(reference_faces):
            raise ValueError(f"--reference_face_index={reference_face_index}, but {reference_name!r} has "
                             f"{len(reference_faces)} face(s)")
        ref_crop, _ = align_lib.align(reference, reference_faces[reference_face_index].landmarks5, s, template)
        ref = np.repeat(to_signed(ref_crop)[None], len(chosen), axis=0)
    images, masks = engine.edit(operation, to_signed(crops), ref, request)
    out = photo
    outputs = None
    if images is not None:
        outputs = to_uint8(images)
        for crop, m in zip(outputs, matrices):
            out = paste_lib.paste(out, crop, m)
    mask_canvas = None
    if masks is not None:
        mask_canvas = np.zeros(photo.shape[:2] + (1,), np.uint8)
        hard = np.ones([s, s], np.float32)  # a mask is pasted as is: the model already decided its edge
        for mk, m in zip(masks, matrices):
            mask_canvas = paste_lib.paste(mask_canvas, np.clip(mk * 255.0 + 0.5, 0, 255).astype(np.uint8), m, hard)
    return Result(out, mask_canvas, faces, chosen, crops, outputs)
