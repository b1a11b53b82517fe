"""Where a model's weights come from: one pydantic model per source kind.

The fetching logic lives in :mod:`coreml_bench.download`; this module only declares and
validates, so the Snakefile can import it without torch.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from ..schema_base import Sha256, StrictModel
from ..train.recipe import TrainingRecipe


def _file_url_inside_workdir(url: str) -> str:
    """A file:// URL may name only a file under the working directory (the project or the
    study's workdir): anything else readable (e.g. /etc/passwd) would be copied into results/
    as if it were weights. Files elsewhere on disk are source kind 'local', with a path."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "file":
        return url
    path = Path(urllib.parse.unquote(parts.path)).resolve()
    root = Path.cwd().resolve()
    if not path.is_relative_to(root):
        raise ValueError(
            f"file URL {url!r} points outside the working directory {str(root)!r}; for a file "
            "on disk use source kind 'local' with its path (and sha256)"
        )
    return url


DownloadUrl = Annotated[
    str, Field(pattern=r"^(https?|file)://\S+$"), AfterValidator(_file_url_inside_workdir)
]


class TorchvisionSource(StrictModel):
    """A torchvision weights enum member, e.g. ``MobileNet_V2_Weights.IMAGENET1K_V1``.

    Downloaded from its URL and checked against the sha256 prefix in the file name,
    exactly as torchvision does.
    """

    kind: Literal["torchvision"] = "torchvision"
    weights: str = Field(pattern=r"^[A-Za-z0-9_]+_Weights\.[A-Za-z0-9_]+$")


UNPINNED = (
    "without it the download is accepted but logged and recorded as unverified, with the "
    "digest to pin"
)


class UrlSource(StrictModel):
    """Any URL, checked against the full sha256 the downloaded bytes must have."""

    kind: Literal["url"] = "url"
    url: DownloadUrl
    sha256: Sha256 | None = Field(default=None, description=f"sha256 of the file; {UNPINNED}")


class LocalFileSource(StrictModel):
    """A checkpoint already on disk (optionally checksum-verified)."""

    kind: Literal["local"] = "local"
    path: Path
    sha256: Sha256 | None = None


class PackageSource(StrictModel):
    """A checkpoint shipped inside an installed Python package (offline-friendly)."""

    kind: Literal["package"] = "package"
    package: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$")
    resource: str = Field(min_length=1, description="path of the file inside the package")
    sha256: Sha256 | None = None


class RandomInitSource(StrictModel):
    """Seeded random initialisation: for ratios and tests where no checkpoint can be had."""

    kind: Literal["random"] = "random"
    seed: int = Field(default=0, ge=0, le=2**63 - 1)


InitWeights = Annotated[
    TorchvisionSource | UrlSource | LocalFileSource | PackageSource, Field(discriminator="kind")
]


class TrainSource(StrictModel):
    """The workflow trains the fp32 baseline itself, on the model's training data (its
    ``training_data`` or ``data.training``), with this recipe."""

    kind: Literal["train"] = "train"
    recipe: TrainingRecipe = TrainingRecipe()
    init: InitWeights | None = Field(
        default=None,
        description="weights training starts from (downloaded and checked like any source): "
        "the whole network's, or a backbone's where the architecture adapts it (CenterNet "
        "from torchvision's ResNet34, as the seeds do); default: seeded random",
    )


class CoreMLPackageSource(StrictModel):
    """A published Core ML package zip (e.g. Apple's ``*.mlpackage.zip`` from the seed tables).

    It enters the chain after ``convert``: the unpacked package is the variant every
    Core ML-side compression starts from, and evaluation/profiling measure it directly.
    """

    kind: Literal["coreml_package"] = "coreml_package"
    url: DownloadUrl
    sha256: Sha256 | None = Field(default=None, description=f"sha256 of the zip; {UNPINNED}")


WeightsSource = Annotated[
    TorchvisionSource
    | UrlSource
    | LocalFileSource
    | PackageSource
    | RandomInitSource
    | TrainSource
    | CoreMLPackageSource,
    Field(discriminator="kind"),
]
