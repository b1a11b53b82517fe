"""Conformance cases: image resizing (``image_resizing.py``): upsample_nearest_neighbor,
upsample_bilinear, resize_bilinear, resize_nearest_neighbor, resize (iOS17), crop,
crop_resize. None of these has value inference: the references below follow the grid
formulas of ``resize_bilinear``'s definition, point by point."""

from __future__ import annotations

import numpy as np
from coremltools.converters.mil import Builder as mb
from mil_conformance import Case, Refusal, lit

rng = np.random.default_rng(3)
X = rng.normal(size=(1, 2, 3, 4)).astype(np.float32) * 2
X3 = rng.normal(size=(2, 3, 5)).astype(np.float32)
X_INT = rng.integers(-9, 9, size=(1, 2, 3, 4)).astype(np.int32)
IMAGES = rng.normal(size=(2, 2, 5, 6)).astype(np.float32)


def grid_point(i: int, size_in: int, size_out: int, mode: str) -> float:
    """One grid point, written as in resize_bilinear's Notes."""
    if mode in ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS"):
        if size_out == 1:
            point = (size_in - 1) / 2 if mode == "ALIGN_CORNERS" else 0.0
        else:
            point = i * (size_in - 1) / (size_out - 1)
    elif mode == "DEFAULT":
        point = i * (size_in - size_in / size_out) / (size_out - 1) if size_out > 1 else 0.0
    elif mode == "OFFSET_CORNERS":
        delta = max(1, size_in - 1) / size_out
        point = 0.5 * delta + i * delta
    else:  # UNALIGN_CORNERS
        spacing = size_in / size_out
        point = i * spacing + 0.5 * spacing - 0.5
    return min(size_in - 1, max(0.0, point))


def bilinear_at(image: np.ndarray, y: float, x: float) -> np.ndarray:
    """image[..., H, W] at the point (y, x), from its four neighbours."""
    height, width = image.shape[-2:]
    y0, x0 = int(np.floor(y)), int(np.floor(x))
    y1, x1 = min(y0 + 1, height - 1), min(x0 + 1, width - 1)
    dy, dx = y - y0, x - x0
    return (
        image[..., y0, x0] * (1 - dy) * (1 - dx)
        + image[..., y0, x1] * (1 - dy) * dx
        + image[..., y1, x0] * dy * (1 - dx)
        + image[..., y1, x1] * dy * dx
    )


def resized(x: np.ndarray, height: int, width: int, mode: str) -> np.ndarray:
    out = np.zeros((*x.shape[:-2], height, width))
    for i in range(height):
        for j in range(width):
            y = grid_point(i, x.shape[-2], height, mode)
            z = grid_point(j, x.shape[-1], width, mode)
            out[..., i, j] = bilinear_at(x, y, z)
    return out


def nearest(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """Integer upsampling: output[i] = input[floor(i * in / out)]."""
    rows = [i * x.shape[-2] // height for i in range(height)]
    cols = [j * x.shape[-1] // width for j in range(width)]
    return x[..., rows, :][..., cols]


def crop_resized(
    x: np.ndarray,
    box: tuple[float, float, float, float],
    height: int,
    width: int,
    mode: str,
    pad: float,
) -> np.ndarray:
    """One crop of x[C, H, W]: box (h0, w0, h1, w1) in pixels, linspace grids."""
    h0, w0, h1, w1 = box

    def points(start: float, end: float, n: int) -> list[float]:
        if n == 1:
            return [start if mode == "STRICT_ALIGN_CORNERS" else (start + end) / 2]
        return [start + k * (end - start) / (n - 1) for k in range(n)]

    out = np.full((x.shape[0], height, width), pad, dtype=np.float64)
    for i, y in enumerate(points(h0, h1, height)):
        for j, z in enumerate(points(w0, w1, width)):
            if 0 <= y <= x.shape[-2] - 1 and 0 <= z <= x.shape[-1] - 1:
                out[:, i, j] = bilinear_at(x, y, z)
    return out


MODES = ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS", "DEFAULT", "OFFSET_CORNERS", "UNALIGN_CORNERS")

CASES = [
    # upsample_nearest_neighbor (shape.py): integer factors, int and float literals.
    Case(
        "upsample_nearest_neighbor",
        "default scales (1, 1)",
        {"x": X},
        lambda x: mb.upsample_nearest_neighbor(x=x),
        reference=lambda x: x,
        exact=True,
    ),
    Case(
        "upsample_nearest_neighbor",
        "int scales 2x3",
        {"x": X},
        lambda x: mb.upsample_nearest_neighbor(x=x, scale_factor_height=2, scale_factor_width=3),
        reference=lambda x: nearest(x, 6, 12),
        exact=True,
    ),
    Case(
        "upsample_nearest_neighbor",
        "float scales 2.0x1.0, rank 3",
        {"x": X3},
        lambda x: mb.upsample_nearest_neighbor(
            x=x, scale_factor_height=2.0, scale_factor_width=1.0
        ),
        reference=lambda x: nearest(x, 6, 5),
        exact=True,
    ),
    # upsample_bilinear
    Case(
        "upsample_bilinear",
        "default (align_corners=True), x2",
        {"x": X},
        lambda x: mb.upsample_bilinear(x=x, scale_factor_height=2, scale_factor_width=2),
        reference=lambda x: resized(x, 6, 8, "STRICT_ALIGN_CORNERS"),
    ),
    Case(
        "upsample_bilinear",
        "align_corners=False (half-pixel), x2 x3",
        {"x": X},
        lambda x: mb.upsample_bilinear(
            x=x, scale_factor_height=2, scale_factor_width=3, align_corners=False
        ),
        reference=lambda x: resized(x, 6, 12, "UNALIGN_CORNERS"),
    ),
    Case(
        "upsample_bilinear",
        "align_corners=False, fractional 1.5 x 2.5 (recomputed scale)",
        {"x": X},
        lambda x: mb.upsample_bilinear(
            x=x, scale_factor_height=1.5, scale_factor_width=2.5, align_corners=False
        ),
        reference=lambda x: resized(x, 4, 10, "UNALIGN_CORNERS"),
    ),
    Case(
        "upsample_bilinear",
        "align_corners=True, fractional 1.7, rank 3",
        {"x": X3},
        lambda x: mb.upsample_bilinear(
            x=x, scale_factor_height=1.7, scale_factor_width=1.7, align_corners=True
        ),
        reference=lambda x: resized(x, 5, 8, "STRICT_ALIGN_CORNERS"),
    ),
    Case(
        "upsample_bilinear",
        "align_corners=False half_pixel_centers=False (DEFAULT grid)",
        {"x": X},
        lambda x: mb.upsample_bilinear(
            x=x,
            scale_factor_height=2,
            scale_factor_width=3,
            align_corners=False,
            half_pixel_centers=False,
        ),
        reference=lambda x: resized(x, 6, 12, "DEFAULT"),
    ),
    Case(
        "upsample_bilinear",
        "align_corners=False half_pixel_centers=True",
        {"x": X},
        lambda x: mb.upsample_bilinear(
            x=x,
            scale_factor_height=3,
            scale_factor_width=2,
            align_corners=False,
            half_pixel_centers=True,
        ),
        reference=lambda x: resized(x, 9, 8, "UNALIGN_CORNERS"),
    ),
    Case(
        "upsample_bilinear",
        "align_corners=True half_pixel_centers=False, iOS16",
        {"x": X},
        lambda x: mb.upsample_bilinear(
            x=x,
            scale_factor_height=2,
            scale_factor_width=2,
            align_corners=True,
            half_pixel_centers=False,
        ),
        reference=lambda x: resized(x, 6, 8, "STRICT_ALIGN_CORNERS"),
        opset="iOS16",
    ),
    Case(
        "upsample_bilinear",
        "downsampling 0.5, align_corners=False",
        {"x": IMAGES},
        lambda x: mb.upsample_bilinear(
            x=x, scale_factor_height=0.5, scale_factor_width=0.5, align_corners=False
        ),
        reference=lambda x: resized(x, 2, 3, "UNALIGN_CORNERS"),
    ),
    Case(
        "upsample_bilinear",
        "iOS15 align_corners=False",
        {"x": X},
        lambda x: mb.upsample_bilinear(
            x=x, scale_factor_height=2, scale_factor_width=2, align_corners=False
        ),
        reference=lambda x: resized(x, 6, 8, "UNALIGN_CORNERS"),
        opset="iOS15",
    ),
]

# resize_bilinear: every sampling mode, up and down, including a size-1 output axis.
for mode in MODES:
    CASES += [
        Case(
            "resize_bilinear",
            f"{mode} up 3x4 → 5x7",
            {"x": X},
            lambda x, mode=mode: mb.resize_bilinear(
                x=x, target_size_height=5, target_size_width=7, sampling_mode=mode
            ),
            reference=lambda x, mode=mode: resized(x, 5, 7, mode),
        ),
        Case(
            "resize_bilinear",
            f"{mode} down 5x6 → 1x4",
            {"x": IMAGES},
            lambda x, mode=mode: mb.resize_bilinear(
                x=x, target_size_height=1, target_size_width=4, sampling_mode=mode
            ),
            reference=lambda x, mode=mode: resized(x, 1, 4, mode),
        ),
        Case(
            "resize_bilinear",
            f"{mode} same size, rank 3",
            {"x": X3},
            lambda x, mode=mode: mb.resize_bilinear(
                x=x, target_size_height=3, target_size_width=5, sampling_mode=mode
            ),
            reference=lambda x, mode=mode: resized(x, 3, 5, mode),
        ),
        # iOS17 resize, LINEAR: two axes, and one axis.
        Case(
            "resize",
            f"LINEAR {mode} 2 dims",
            {"x": X},
            lambda x, mode=mode: mb.resize(
                x=x,
                shape=np.array([1, 2, 5, 3], np.int32),
                resized_dims=np.uint32(2),
                sampling_mode=mode,
            ),
            reference=lambda x, mode=mode: resized(x, 5, 3, mode),
            opset="iOS17",
        ),
    ]
CASES += [
    Case(
        "resize_bilinear",
        "default mode and sizes (1x1)",
        {"x": X},
        lambda x: mb.resize_bilinear(x=x),
        reference=lambda x: resized(x, 1, 1, "DEFAULT"),
    ),
    Case(
        "resize",
        "LINEAR default mode, shape [7, 0] keeps W",
        {"x": X},
        lambda x: mb.resize(x=x, shape=np.array([7, 0], np.int32), resized_dims=np.uint32(2)),
        reference=lambda x: resized(x, 7, 4, "DEFAULT"),
        opset="iOS17",
    ),
    Case(
        "resize",
        "LINEAR one axis (resized_dims=1)",
        {"x": X},
        lambda x: mb.resize(
            x=x,
            shape=np.array([9], np.int32),
            resized_dims=np.uint32(1),
            sampling_mode="UNALIGN_CORNERS",
        ),
        reference=lambda x: resized(x[..., None, :], 1, 9, "UNALIGN_CORNERS")[..., 0, :],
        opset="iOS17",
    ),
    Case(
        "resize",
        "resized_dims=0 (identity)",
        {"x": X},
        lambda x: mb.resize(x=x, shape=np.array([5], np.int32), resized_dims=np.uint32(0)),
        reference=lambda x: x,
        opset="iOS17",
    ),
    Case(
        "resize",
        "NEAREST_NEIGHBOR x2 x3",
        {"x": X},
        lambda x: mb.resize(
            x=x,
            shape=np.array([6, 12], np.int32),
            resized_dims=np.uint32(2),
            interpolation_mode="NEAREST_NEIGHBOR",
        ),
        reference=lambda x: nearest(x, 6, 12),
        exact=True,
        opset="iOS17",
    ),
    Case(
        "resize",
        "NEAREST_NEIGHBOR int32 x, shape computed at run time",
        {"x": X_INT},
        lambda x: mb.resize(
            x=x,
            shape=mb.mul(x=mb.shape(x=x), y=np.int32(2)),
            resized_dims=np.uint32(2),
            interpolation_mode="NEAREST_NEIGHBOR",
        ),
        reference=lambda x: nearest(x, 6, 8),
        exact=True,
        dtypes=("fp32",),
        opset="iOS17",
    ),
    # resize_nearest_neighbor: integer upsampling (and unchanged size).
    Case(
        "resize_nearest_neighbor",
        "3x4 → 6x8",
        {"x": X},
        lambda x: mb.resize_nearest_neighbor(x=x, target_size_height=6, target_size_width=8),
        reference=lambda x: nearest(x, 6, 8),
        exact=True,
    ),
    Case(
        "resize_nearest_neighbor",
        "3x5 → 3x15, rank 3",
        {"x": X3},
        lambda x: mb.resize_nearest_neighbor(x=x, target_size_height=3, target_size_width=15),
        reference=lambda x: nearest(x, 3, 15),
        exact=True,
    ),
    # crop
    Case(
        "crop",
        "top 1 bottom 0, left 1 right 2",
        {"x": X},
        lambda x: mb.crop(x=x, crop_height=[1, 0], crop_width=[1, 2]),
        reference=lambda x: x[..., 1:, 1:2],
        exact=True,
    ),
    Case(
        "crop",
        "nothing cropped, rank 3",
        {"x": X3},
        lambda x: mb.crop(x=x, crop_height=[0, 0], crop_width=[0, 0]),
        reference=lambda x: x,
        exact=True,
    ),
]

# --------------------------------------------------------------------------- crop_resize
BOXES = np.array([[0.5, 1.0, 3.5, 4.0], [0.0, 0.0, 4.0, 5.0], [-1.0, 2.0, 2.0, 7.0]], np.float32)
NORMALIZED = np.array([[0.1, 0.2, 0.9, 0.7], [0.0, 0.0, 1.0, 1.0]], np.float32)


def _crops(
    x,
    boxes,
    indices,
    height,
    width,
    mode,
    pad=0.0,
    order="CORNERS_HEIGHT_FIRST",
    scale_h=1.0,
    scale_w=1.0,
):
    out = []
    for box, b in zip(boxes, indices, strict=True):
        a, c, d, e = (float(v) for v in box)
        if order == "CORNERS_WIDTH_FIRST":
            a, c, d, e = c, a, e, d
        elif order == "CENTER_SIZE_HEIGHT_FIRST":
            a, c, d, e = a - d / 2, c - e / 2, a + d / 2, c + e / 2
        elif order == "CENTER_SIZE_WIDTH_FIRST":
            a, c, d, e = c - e / 2, a - d / 2, c + e / 2, a + d / 2
        box = (a * scale_h, c * scale_w, d * scale_h, e * scale_w)
        out.append(crop_resized(x[b], box, height, width, mode, pad))
    return np.stack(out)


CASES += [
    Case(
        "crop_resize",
        "iOS17 boxes + box_indices, ALIGN_CORNERS, pad_value, out of range box",
        {"x": IMAGES, "boxes": BOXES},
        lambda x, boxes: mb.crop_resize(
            x=x,
            boxes=boxes,
            box_indices=np.array([1, 0, 1], np.int32),
            target_height=3,
            target_width=4,
            sampling_mode="ALIGN_CORNERS",
            pad_value=lit(x, -2.5),
        ),
        reference=lambda x, boxes: _crops(x, boxes, [1, 0, 1], 3, 4, "ALIGN_CORNERS", -2.5),
        opset="iOS17",
    ),
    Case(
        "crop_resize",
        "iOS17 default box_indices, STRICT_ALIGN_CORNERS, 1x1 output",
        {"x": IMAGES, "boxes": BOXES[:2]},
        lambda x, boxes: mb.crop_resize(x=x, boxes=boxes, sampling_mode="STRICT_ALIGN_CORNERS"),
        reference=lambda x, boxes: _crops(x, boxes, [0, 1], 1, 1, "STRICT_ALIGN_CORNERS"),
        opset="iOS17",
    ),
    Case(
        "crop_resize",
        "iOS17 ALIGN_CORNERS 1x1 output (box centre)",
        {"x": IMAGES, "boxes": BOXES[:2]},
        lambda x, boxes: mb.crop_resize(
            x=x, boxes=boxes, target_height=1, target_width=3, sampling_mode="ALIGN_CORNERS"
        ),
        reference=lambda x, boxes: _crops(x, boxes, [0, 1], 1, 3, "ALIGN_CORNERS"),
        opset="iOS17",
    ),
    Case(
        "crop_resize",
        "iOS17 normalized coordinates",
        {"x": IMAGES, "boxes": NORMALIZED},
        lambda x, boxes: mb.crop_resize(
            x=x,
            boxes=boxes,
            box_indices=np.array([0, 0], np.int32),
            target_height=4,
            target_width=3,
            normalized_coordinates=True,
            sampling_mode="ALIGN_CORNERS",
        ),
        reference=lambda x, boxes: _crops(
            x, boxes, [0, 0], 4, 3, "ALIGN_CORNERS", scale_h=4.0, scale_w=5.0
        ),
        opset="iOS17",
    ),
    Case(
        "crop_resize",
        "iOS17 spatial_scale 0.5",
        {"x": IMAGES, "boxes": BOXES * 2},
        lambda x, boxes: mb.crop_resize(
            x=x,
            boxes=boxes,
            box_indices=np.array([0, 1, 0], np.int32),
            target_height=2,
            target_width=2,
            spatial_scale=np.float32(0.5),
            sampling_mode="ALIGN_CORNERS",
        ),
        reference=lambda x, boxes: _crops(
            x, boxes, [0, 1, 0], 2, 2, "ALIGN_CORNERS", scale_h=0.5, scale_w=0.5
        ),
        opset="iOS17",
    ),
    Case(
        "crop_resize",
        "iOS16 roi [N,1,4,1,1]: every box on every image, pad_value",
        {"x": IMAGES, "roi": BOXES.reshape(3, 1, 4, 1, 1)},
        lambda x, roi: mb.crop_resize(
            x=x,
            roi=roi,
            target_height=3,
            target_width=2,
            sampling_mode="ALIGN_CORNERS",
            pad_value=lit(x, 1.5),
        ),
        reference=lambda x, roi: np.stack(
            [_crops(x, roi.reshape(3, 4), [b] * 3, 3, 2, "ALIGN_CORNERS", 1.5) for b in range(2)],
            axis=1,
        ),
        opset="iOS16",
    ),
    Case(
        "crop_resize",
        "iOS15 roi [N,1,5,1,1] with batch index, B=1",
        {
            "x": IMAGES[:1],
            "roi": np.array([[0, 1, 1, 3, 4], [0, 0, 0, 4, 5]], np.float32).reshape(2, 1, 5, 1, 1),
        },
        lambda x, roi: mb.crop_resize(
            x=x, roi=roi, target_height=2, target_width=3, sampling_mode="STRICT_ALIGN_CORNERS"
        ),
        reference=lambda x, roi: _crops(
            x, roi.reshape(2, 5)[:, 1:], [0, 0], 2, 3, "STRICT_ALIGN_CORNERS"
        )[:, None],
        opset="iOS15",
    ),
]
for order, boxes in (
    ("CORNERS_WIDTH_FIRST", np.array([[1.0, 0.5, 4.0, 3.5]], np.float32)),
    ("CENTER_SIZE_HEIGHT_FIRST", np.array([[2.0, 2.5, 2.0, 3.0]], np.float32)),
    ("CENTER_SIZE_WIDTH_FIRST", np.array([[2.5, 2.0, 3.0, 2.0]], np.float32)),
):
    CASES.append(
        Case(
            "crop_resize",
            f"iOS17 box_coordinate_mode={order}",
            {"x": IMAGES, "boxes": boxes},
            lambda x, boxes, order=order: mb.crop_resize(
                x=x,
                boxes=boxes,
                box_indices=np.array([1], np.int32),
                target_height=3,
                target_width=3,
                box_coordinate_mode=order,
                sampling_mode="ALIGN_CORNERS",
            ),
            reference=lambda x, boxes, order=order: _crops(
                x, boxes, [1], 3, 3, "ALIGN_CORNERS", order=order
            ),
            opset="iOS17",
        )
    )

REFUSALS = [
    Refusal(
        "upsample_bilinear",
        "align_corners=True half_pixel_centers=True",
        {"x": X},
        lambda x: mb.upsample_bilinear(
            x=x,
            scale_factor_height=2,
            scale_factor_width=2,
            align_corners=True,
            half_pixel_centers=True,
        ),
        "half_pixel_centers=True",
    ),
    Refusal(
        "resize_nearest_neighbor",
        "3x4 → 5x6 (not integer upsampling)",
        {"x": X},
        lambda x: mb.resize_nearest_neighbor(x=x, target_size_height=5, target_size_width=6),
        "not an integer upsampling",
    ),
    Refusal(
        "resize_nearest_neighbor",
        "downsampling 3x4 → 3x2",
        {"x": X},
        lambda x: mb.resize_nearest_neighbor(x=x, target_size_height=3, target_size_width=2),
        "not an integer upsampling",
    ),
    Refusal(
        "resize",
        "NEAREST_NEIGHBOR fractional",
        {"x": X},
        lambda x: mb.resize(
            x=x,
            shape=np.array([4, 4], np.int32),
            resized_dims=np.uint32(2),
            interpolation_mode="NEAREST_NEIGHBOR",
        ),
        "not an integer upsampling",
    ),
    Refusal(
        "resize",
        "NEAREST_NEIGHBOR ALIGN_CORNERS",
        {"x": X},
        lambda x: mb.resize(
            x=x,
            shape=np.array([6, 8], np.int32),
            resized_dims=np.uint32(2),
            interpolation_mode="NEAREST_NEIGHBOR",
            sampling_mode="ALIGN_CORNERS",
        ),
        "only DEFAULT",
    ),
    Refusal(
        "resize",
        "LINEAR int32",
        {"x": X_INT},
        lambda x: mb.resize(x=x, shape=np.array([6, 8], np.int32), resized_dims=np.uint32(2)),
        "int tensor",
    ),
    Refusal(
        "resize",
        "resized_dims=3",
        {"x": X},
        lambda x: mb.resize(x=x, shape=np.array([2, 6, 8], np.int32), resized_dims=np.uint32(3)),
        "only 1 or 2",
    ),
]
for mode in ("DEFAULT", "OFFSET_CORNERS", "UNALIGN_CORNERS"):
    REFUSALS.append(
        Refusal(
            "crop_resize",
            f"sampling_mode={mode}",
            {"x": IMAGES, "boxes": BOXES},
            lambda x, boxes, mode=mode: mb.crop_resize(
                x=x, boxes=boxes, box_indices=np.array([0, 1, 0], np.int32), sampling_mode=mode
            ),
            f"sampling_mode={mode!r}",
            opset="iOS17",
        )
    )
REFUSALS.append(
    Refusal(
        "crop_resize",
        "roi with batch indices, B=2",
        {"x": IMAGES, "roi": np.zeros((1, 1, 5, 1, 1), np.float32)},
        lambda x, roi: mb.crop_resize(x=x, roi=roi, sampling_mode="ALIGN_CORNERS"),
        "batch indices",
        opset="iOS16",
    )
)
