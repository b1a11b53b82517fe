"""Rules and labels that Core ML-side and torch-side entries of one method share."""

from __future__ import annotations

# Upper bounds that catch typos (a block of 1e9 weights, 100000 k-means processes): no layer of
# a vision model has more channels than this, and k-means runs one process per worker.
MAX_CHANNEL_BLOCK = 4096
MAX_KMEANS_WORKERS = 64


def check_group_size(granularity: str, group_size: int | None) -> None:
    """Palettization: a group size goes with per_grouped_channel and only with it."""
    if granularity == "per_grouped_channel" and group_size is None:
        raise ValueError("group_size is required when granularity is 'per_grouped_channel'")
    if granularity == "per_tensor" and group_size is not None:
        raise ValueError(f"group_size={group_size} is only valid with per_grouped_channel")


def check_block_size(granularity: str, block_size: int | None) -> None:
    """Linear quantization: a block size goes with per_block and only with it."""
    if granularity == "per_block" and block_size is None:
        raise ValueError("block_size is required when granularity is 'per_block'")
    if granularity != "per_block" and block_size is not None:
        raise ValueError(f"block_size={block_size} is only valid with per_block")


def linear_quantization_label(dtype: str, granularity: str, block_size: int | None) -> str:
    if granularity == "per_block":
        return f"{dtype} per-block {block_size}"
    return f"{dtype} {granularity.replace('_', '-')}"


def linear_quantization_target(dtype: str, granularity: str) -> str:
    """4-bit types and per-block scales arrived with iOS18."""
    return "iOS18" if dtype in ("int4", "uint4") or granularity == "per_block" else "iOS16"


def check_sparsity_or_n_m(target_sparsity: float | None, n_m: tuple[int, int] | None) -> None:
    if (target_sparsity is None) == (n_m is None):
        raise ValueError("set exactly one of target_sparsity or n_m")
    if n_m is not None and not 0 < n_m[0] < n_m[1]:
        raise ValueError(f"n_m={list(n_m)} must satisfy 0 < n < m")


def sparsity_label(target_sparsity: float | None, n_m: tuple[int, int] | None) -> str:
    if n_m is not None:
        return f"{n_m[0]}:{n_m[1]} sparsity"
    return f"Unstructured Sparsity {round(100 * (target_sparsity or 0))}%"
