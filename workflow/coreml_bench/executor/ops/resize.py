"""Image resizing: upsample_bilinear, resize_bilinear, resize_nearest_neighbor, resize (iOS17),
crop, crop_resize (``image_resizing.py``; ``upsample_nearest_neighbor`` lives in ``shape``).

Bilinear ops sample each resized axis on a grid of points in [0, X_in - 1] (the sampling
mode says where, see ``resize_bilinear``) and interpolate linearly between the two
neighbouring input elements; the grid depends only on sizes, so it is computed once in
float64. Nearest-neighbour resizing is implemented only where every reading of MIL's
definition agrees: an integer upsampling factor (each element repeated) or an unchanged size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .registry import (
    OpView,
    all_checks,
    as_tensor,
    ints,
    number,
    one_of,
    register_op,
    rows_per_sample,
    rows_unsafe,
)

if TYPE_CHECKING:
    import torch

SAMPLING_MODES = (
    "STRICT_ALIGN_CORNERS", "ALIGN_CORNERS", "DEFAULT", "OFFSET_CORNERS", "UNALIGN_CORNERS",
)  # fmt: skip


def sampling_grid(size_in: int, size_out: int, mode: str) -> np.ndarray:
    """The grid points (float64) of MIL's ``sampling_mode`` for one axis, clamped to
    [0, size_in - 1] as the op's definition states."""
    i = np.arange(size_out, dtype=np.float64)
    if mode in ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS"):
        if size_out == 1:
            # STRICT: the first point (i * spacing at i = 0); ALIGN: the middle.
            grid = np.array([0.0 if mode == "STRICT_ALIGN_CORNERS" else (size_in - 1) / 2])
        else:
            grid = i * ((size_in - 1) / (size_out - 1))
    elif mode == "DEFAULT":
        # spacing = (X_in - X_in / X_out) / (X_out - 1) = X_in / X_out
        grid = i * (size_in / size_out)
    elif mode == "OFFSET_CORNERS":
        delta = max(1, size_in - 1) / size_out
        grid = 0.5 * delta + i * delta
    elif mode == "UNALIGN_CORNERS":
        spacing = size_in / size_out
        grid = i * spacing + 0.5 * spacing - 0.5
    else:
        raise ValueError(f"unknown sampling mode {mode!r}")
    return np.clip(grid, 0.0, size_in - 1)


def _interpolate_axis(x: torch.Tensor, dim: int, grid: np.ndarray) -> torch.Tensor:
    """Linear interpolation of ``x`` along ``dim`` at the (in-range) points ``grid``."""
    import torch

    size_in = x.shape[dim]
    low = np.floor(grid).astype(np.int64)
    high = np.minimum(low + 1, size_in - 1)
    frac = grid - low
    shape = [1] * x.ndim
    shape[dim] = len(grid)
    weight = torch.tensor(frac, dtype=torch.float32, device=x.device).view(shape)
    lo = torch.from_numpy(low).to(x.device)
    hi = torch.from_numpy(high).to(x.device)
    below, above = x.index_select(dim, lo), x.index_select(dim, hi)
    return below + (above - below) * weight


def _bilinear(x: torch.Tensor, sizes: list[int], modes: list[str]) -> torch.Tensor:
    """Resize the last len(sizes) axes of ``x`` to ``sizes``, axis by axis."""
    out = x
    first = x.ndim - len(sizes)
    for k, (size, mode) in enumerate(zip(sizes, modes, strict=True)):
        dim = first + k
        if out.shape[dim] == size and (mode != "OFFSET_CORNERS" or size == 1):
            continue  # at an unchanged size every other grid is the input points themselves
        out = _interpolate_axis(out, dim, sampling_grid(out.shape[dim], size, mode))
    return out if out is not x else x.clone()


def _repeat_nearest(x: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """Nearest-neighbour resize by integer factors (checked beforehand): repeat elements."""
    out = x
    first = x.ndim - len(sizes)
    for k, size in enumerate(sizes):
        dim = first + k
        factor = size // out.shape[dim]
        if factor != 1:
            out = out.repeat_interleave(factor, dim=dim)
    return out if out is not x else x.clone()


def _integer_factors(sizes_in: list[int | None], sizes_out: list[int | None]) -> list[str]:
    """Why a nearest-neighbour resize from ``sizes_in`` to ``sizes_out`` is ambiguous."""
    reasons = []
    for size_in, size_out in zip(sizes_in, sizes_out, strict=True):
        if size_in is None or size_out is None:
            reasons.append("sizes known only at run time")
        elif size_out % size_in:
            reasons.append(f"size {size_in} → {size_out} is not an integer upsampling")
    return reasons


# --------------------------------------------------------------------------- upsample_bilinear


def _upsample_bilinear_check(view: OpView) -> list[str]:
    reasons = []
    for key in ("scale_factor_height", "scale_factor_width", "align_corners", "half_pixel_centers"):
        if view.has(key) and not view.is_literal(key):
            reasons.append(f"upsample_bilinear {view.name!r}: {key} computed at run time")
    align = bool(view.literal("align_corners", True))
    half_pixel = view.literal("half_pixel_centers", not align)
    if align and half_pixel:
        reasons.append(
            f"upsample_bilinear {view.name!r}: align_corners=True with half_pixel_centers=True "
            "is not supported (no defined sampling grid)"
        )
    return reasons


def _scaled(size: int, scale: Any) -> int:
    """MIL's output size: floor(scale * size), in the scale's own type (fp32 or int32)."""
    scale = number(scale)
    if isinstance(scale, float):
        return int(np.floor(np.float32(scale) * np.float32(size)))
    return int(scale) * size


@register_op("upsample_bilinear", rows=rows_per_sample, check=_upsample_bilinear_check)
def upsample_bilinear(
    x: torch.Tensor,
    scale_factor_height: Any = 1,
    scale_factor_width: Any = 1,
    align_corners: bool = True,
    half_pixel_centers: bool | None = None,
) -> torch.Tensor:
    """The scale is recomputed from the output size (spacing X_in / X_out):
    align_corners → STRICT_ALIGN_CORNERS; half-pixel centres → UNALIGN_CORNERS;
    neither → DEFAULT (TF's legacy grid i * X_in / X_out)."""
    if half_pixel_centers is None:
        half_pixel_centers = not align_corners
    mode = (
        "STRICT_ALIGN_CORNERS"
        if align_corners
        else "UNALIGN_CORNERS"
        if half_pixel_centers
        else "DEFAULT"
    )
    sizes = [_scaled(x.shape[-2], scale_factor_height), _scaled(x.shape[-1], scale_factor_width)]
    return _bilinear(x, sizes, [mode, mode])


# --------------------------------------------------------------------------- resize_bilinear


@register_op(
    "resize_bilinear",
    rows=rows_per_sample,
    check=one_of("sampling_mode", SAMPLING_MODES, "DEFAULT"),
)
def resize_bilinear(
    x: torch.Tensor,
    target_size_height: Any = 1,
    target_size_width: Any = 1,
    sampling_mode: str = "DEFAULT",
) -> torch.Tensor:
    sizes = [int(number(target_size_height)), int(number(target_size_width))]
    return _bilinear(x, sizes, [sampling_mode, sampling_mode])


# --------------------------------------------------------------------------- nearest neighbour


def _resize_nearest_check(view: OpView) -> list[str]:
    shape = view.shape("x")
    out = view.out_shapes[0]
    reasons = _integer_factors(list(shape[-2:]), list(out[-2:]))
    return [
        f"resize_nearest_neighbor {view.name!r}: {r} (the nearest-neighbour grid is defined "
        "exactly only for integer upsampling)"
        for r in reasons
    ]


@register_op(
    "resize_nearest_neighbor", rows=rows_per_sample, exact_fp16=True, check=_resize_nearest_check
)
def resize_nearest_neighbor(
    x: torch.Tensor, target_size_height: Any, target_size_width: Any
) -> torch.Tensor:
    return _repeat_nearest(x, [int(number(target_size_height)), int(number(target_size_width))])


# --------------------------------------------------------------------------- resize (iOS17)


def _resize_check(view: OpView) -> list[str]:
    reasons = all_checks(
        one_of("interpolation_mode", ("LINEAR", "NEAREST_NEIGHBOR"), "LINEAR"),
        one_of("sampling_mode", SAMPLING_MODES, "DEFAULT"),
    )(view)
    if not view.is_literal("resized_dims"):
        return [*reasons, f"resize {view.name!r}: resized_dims computed at run time"]
    dims = int(number(view.literal("resized_dims")))
    if dims > 2:
        reasons.append(f"resize {view.name!r}: resizing {dims} axes (only 1 or 2 are supported)")
    rank = view.rank("x")
    interpolation = view.literal("interpolation_mode", "LINEAR")
    if interpolation == "LINEAR" and view.inputs["x"].dtype.startswith("int"):
        reasons.append(
            f"resize {view.name!r}: LINEAR interpolation of an int tensor (rounding unknown)"
        )
    if interpolation == "NEAREST_NEIGHBOR" and dims:
        if view.literal("sampling_mode", "DEFAULT") != "DEFAULT":
            reasons.append(
                f"resize {view.name!r}: NEAREST_NEIGHBOR with sampling_mode="
                f"{view.literal('sampling_mode')!r} (only DEFAULT is supported)"
            )
        sizes_in = list(view.shape("x")[rank - dims :])
        sizes_out = list(view.out_shapes[0][rank - dims :])
        reasons += [
            f"resize {view.name!r}: NEAREST_NEIGHBOR {r} (exact only for integer upsampling)"
            for r in _integer_factors(sizes_in, sizes_out)
        ]
    return reasons


def _resize_rows(view: OpView) -> str | None:
    dims = view.literal("resized_dims")
    if dims is None or int(number(dims)) >= view.rank("x"):
        return f"resize {view.name!r} may resize the batch axis"
    return None


@register_op("resize", rows=_resize_rows, check=_resize_check)
def resize(
    x: torch.Tensor,
    shape: Any,
    resized_dims: Any,
    interpolation_mode: str = "LINEAR",
    sampling_mode: str = "DEFAULT",
) -> torch.Tensor:
    """Resize the last ``resized_dims`` axes of x to the last ``resized_dims`` entries of
    ``shape`` (0: keep x's size)."""
    dims = int(number(resized_dims))
    if dims == 0:
        return x.clone()
    target = ints(shape)[len(ints(shape)) - dims :]
    first = x.ndim - dims
    sizes = [x.shape[first + k] if t == 0 else t for k, t in enumerate(target)]
    if interpolation_mode == "NEAREST_NEIGHBOR":
        if any(s % x.shape[first + k] for k, s in enumerate(sizes)):
            raise ValueError(f"resize: nearest-neighbour sizes {sizes} are not integer upsampling")
        return _repeat_nearest(x, sizes)
    return _bilinear(x, sizes, [sampling_mode] * dims)


# --------------------------------------------------------------------------- crop


@register_op("crop", rows=rows_per_sample, fresh=False, exact_fp16=True)
def crop(x: torch.Tensor, crop_height: Any, crop_width: Any) -> torch.Tensor:
    top, bottom = ints(crop_height)
    left, right = ints(crop_width)
    return x[..., top : x.shape[-2] - bottom, left : x.shape[-1] - right]


# --------------------------------------------------------------------------- crop_resize

BOX_MODES = (
    "CORNERS_HEIGHT_FIRST",
    "CORNERS_WIDTH_FIRST",
    "CENTER_SIZE_HEIGHT_FIRST",
    "CENTER_SIZE_WIDTH_FIRST",
)
# Within a box the grid is numpy.linspace(start, end, N) for the align-corners modes; the
# other modes' definitions are written for the whole axis [0, X_in - 1] only.
CROP_SAMPLING_MODES = ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS")


def _crop_resize_check(view: OpView) -> list[str]:
    reasons = all_checks(
        one_of("sampling_mode", CROP_SAMPLING_MODES, "DEFAULT"),
        one_of("box_coordinate_mode", BOX_MODES, "CORNERS_HEIGHT_FIRST"),
    )(view)
    for key in (
        "target_height",
        "target_width",
        "normalized_coordinates",
        "spatial_scale",
        "pad_value",
    ):
        if view.has(key) and not view.is_literal(key):
            reasons.append(f"crop_resize {view.name!r}: {key} computed at run time")
    if view.has("roi"):
        roi = view.shape("roi")
        batch = view.shape("x")[0]
        if len(roi) == 5 and roi[2] == 5 and batch != 1:
            reasons.append(
                f"crop_resize {view.name!r}: a roi with batch indices on an input of batch "
                f"{batch} (its output shape is defined inconsistently)"
            )
    return reasons


def _box_corners(boxes: torch.Tensor, mode: str) -> tuple[torch.Tensor, ...]:
    """(h_start, w_start, h_end, w_end) from an (N, 4) float tensor."""
    a, b, c, d = boxes.unbind(-1)
    if mode == "CORNERS_HEIGHT_FIRST":
        return a, b, c, d
    if mode == "CORNERS_WIDTH_FIRST":
        return b, a, d, c
    if mode == "CENTER_SIZE_HEIGHT_FIRST":
        return a - c / 2, b - d / 2, a + c / 2, b + d / 2
    return b - d / 2, a - c / 2, b + d / 2, a + c / 2  # CENTER_SIZE_WIDTH_FIRST


def _box_grid(start: torch.Tensor, end: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """(N, size) sample points between each box's start and end (align-corners modes)."""
    import torch

    if size == 1:
        point = start if mode == "STRICT_ALIGN_CORNERS" else (start + end) / 2
        return point[:, None]
    steps = torch.arange(size, dtype=start.dtype, device=start.device) / (size - 1)
    return start[:, None] + (end - start)[:, None] * steps


def _sample_points(grid: torch.Tensor, size_in: int) -> tuple[torch.Tensor, ...]:
    """Neighbour indices, weight and an in-range mask of sample points along one axis."""
    inside = (grid >= 0) & (grid <= size_in - 1)
    clamped = grid.clamp(0, size_in - 1)
    low = clamped.floor()
    high = (low + 1).clamp(max=size_in - 1)
    return low.long(), high.long(), clamped - low, inside


@register_op("crop_resize", rows=rows_unsafe, check=_crop_resize_check)
def crop_resize(
    x: torch.Tensor,
    roi: Any = None,
    boxes: Any = None,
    box_indices: Any = None,
    target_height: Any = 1,
    target_width: Any = 1,
    normalized_coordinates: bool = False,
    spatial_scale: Any = 1.0,
    box_coordinate_mode: str = "CORNERS_HEIGHT_FIRST",
    sampling_mode: str = "DEFAULT",
    pad_value: Any = 0.0,
) -> torch.Tensor:
    """Bilinear crops of x (B, C, H, W) at boxes; sample points outside the image take
    ``pad_value``. iOS15/16 (``roi`` (N, 1, 4|5, 1, 1)): (N, B, C, h, w), every box on every
    image, or on the image its leading index names; iOS17 (``boxes`` (N, 4), optional
    ``box_indices``): (N, C, h, w)."""
    import torch

    batch, _, height, width = x.shape
    if roi is not None:
        table = as_tensor(roi, x).float()
        table = table.reshape(table.shape[0], -1)
        if table.shape[1] == 5:
            coords, images = table[:, 1:], table[:, 0].round().long()
        else:
            coords, images = table, None
    else:
        coords = as_tensor(boxes, x).float().reshape(-1, 4)
        images = (
            torch.arange(coords.shape[0], device=x.device)
            if box_indices is None
            else as_tensor(box_indices, x).long().reshape(-1).to(x.device)
        )
    coords = coords.to(x.device).double()
    h0, w0, h1, w1 = _box_corners(coords, box_coordinate_mode)
    scale = float(number(spatial_scale))
    h_scale = (height - 1) * scale if normalized_coordinates else scale
    w_scale = (width - 1) * scale if normalized_coordinates else scale
    out_h, out_w = int(number(target_height)), int(number(target_width))
    grid_h = _box_grid(h0 * h_scale, h1 * h_scale, out_h, sampling_mode)  # (N, h)
    grid_w = _box_grid(w0 * w_scale, w1 * w_scale, out_w, sampling_mode)  # (N, w)
    top, bottom, fy, inside_y = _sample_points(grid_h, height)
    left, right, fx, inside_x = _sample_points(grid_w, width)
    fy, fx = fy.float(), fx.float()

    def crops(images_x: torch.Tensor) -> torch.Tensor:
        """images_x: (N, C, H, W), one image per box → (N, C, h, w)."""
        n, c = images_x.shape[:2]
        rows_top = torch.gather(images_x, 2, top[:, None, :, None].expand(n, c, out_h, width))
        rows_bottom = torch.gather(images_x, 2, bottom[:, None, :, None].expand(n, c, out_h, width))
        rows = rows_top + (rows_bottom - rows_top) * fy[:, None, :, None]
        cols_left = torch.gather(rows, 3, left[:, None, None, :].expand(n, c, out_h, out_w))
        cols_right = torch.gather(rows, 3, right[:, None, None, :].expand(n, c, out_h, out_w))
        values = cols_left + (cols_right - cols_left) * fx[:, None, None, :]
        inside = (inside_y[:, :, None] & inside_x[:, None, :])[:, None]
        return torch.where(inside, values, values.new_tensor(float(number(pad_value))))

    if images is not None:
        result = crops(x[images.to(x.device)])
        return result[:, None] if roi is not None else result
    # Every box on every image: (N, B, C, h, w).
    n = coords.shape[0]
    per_image = [crops(x[b : b + 1].expand(n, *x.shape[1:])) for b in range(batch)]
    return torch.stack(per_image, dim=1)
