"""A content digest of an ``.mlpackage`` that is equal for equal models, however often saved.

A byte checksum of the package (``io.directory_sha256``) cannot show that a rerun reproduced a
result. Measured with coremltools 9.0 / protobuf 7.36 (upb backend): converting one seeded
torch model twice (``ct.convert(..., convert_to="mlprogram")``, traced or exported, plain or
then compressed by ``linear_quantize_weights`` or ``palettize_weights``) gives a
byte-identical ``weights/weight.bin``, but

* ``Manifest.json`` differs in every package coremltools creates, even twice in one process:
  the keys of ``itemInfoEntries`` and ``rootModelIdentifier`` are random UUIDs (version 4),
  drawn by libmodelpackage when ``ct.convert`` or a compression pass builds the model's
  package (``MLModel.save`` then copies that package, so two saves of one object are equal).
  The entries themselves (``path``, ``name``, ``author``, ``description``) do not change.
* ``Data/com.apple.CoreML/model.mlmodel`` differs between **processes** (two conversions in
  one process write equal bytes). The parsed specs are equal (``==``, and their text form is
  identical). Only the order of protobuf *map* entries on the wire differs, because
  coremltools writes ``spec.SerializeToString()``: ``Operation.inputs`` and
  ``Operation.attributes`` of the MIL ops (e.g. ``reshape`` writing ``{x, shape}`` in one run
  and ``{shape, x}`` in the next; ``constexpr_affine_dequantize``'s attributes after
  compression). Protobuf leaves map serialization order unspecified; upb writes its hash
  table's order, and that order changes with the process's address layout (ASLR): with ASLR
  off (``setarch -R``) two processes write identical bytes, while a fixed ``PYTHONHASHSEED``
  alone does not make them identical. ``SerializeToString(
  deterministic=True)`` sorts map entries by key. Protobuf only promises that sorted form is
  stable within one protobuf build, so compare digests made in the same environment.
* ``description.metadata.userDefined["com.github.apple.coremltools.conversion_date"]`` is
  ``str(date.today())``, set by ``ct.convert``. It changes when a rerun happens on another day,
  and compression passes copy it unchanged. It is the only *value* in the spec that varies.
  The ``buildInfo`` attribute of the ML program holds the coremltools and torch versions and
  the source dialect, but no date.

The digest therefore hashes, file by file in order of relative POSIX path:

* ``Manifest.json`` as canonical JSON, with each item entry keyed by its ``path`` (plus a
  ``root`` flag instead of ``rootModelIdentifier``) rather than by its UUID;
* the root model spec (the file the manifest's root item names) with ``conversion_date``
  removed, serialized with ``deterministic=True``;
* every other file (``weights/weight.bin``, ...) by its bytes.

Every other part of the spec stays in: the program, the weight file paths and offsets, the
input and output names, types and shapes, the user-visible metadata (author, license,
descriptions, other ``userDefined`` entries such as the coremltools and torch versions). A
different model therefore gives a different digest. Snakemake's marker files
(``io.SNAKEMAKE_MARKERS``) are skipped, as they are by ``io.directory_sha256``. File modes and
times are not hashed.

Import cost: ``import coremltools`` (which ``from coremltools.proto import Model_pb2`` runs
first) takes about 4 s here and imports torch. The generated ``*_pb2`` modules need only
``google.protobuf``, so :func:`_model_proto` loads ``coremltools/proto`` as a private package
in about 0.05 s and does not run ``coremltools/__init__``. upb keeps one message class per
descriptor, so a later ``import coremltools`` gets the very same ``Model`` class. Nothing is
imported at module level, because this package is imported when Snakemake parses the
workflow.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from ..io import CHUNK, SNAKEMAKE_MARKERS

MANIFEST = "Manifest.json"
# Item paths in Manifest.json are relative to this folder of the package.
DATA_DIR = "Data"
# ct.convert writes str(date.today()) here; a rerun on another day differs only by this value.
CONVERSION_DATE_KEY = "com.github.apple.coremltools.conversion_date"
# Bump when the canonical form changes, so old and new digests never compare equal by accident.
DIGEST_FORMAT = b"coreml-bench package-content-digest v1\n"
_PRIVATE_PROTO = "_coreml_bench_coremltools_proto"


class PackageContentError(ValueError):
    """A package lacks the manifest or model spec its content digest is made from."""


def package_content_digest(package: Path) -> str:
    """sha256 (hex) of ``package``'s canonical content. It is equal for reruns that save the
    same model and different when the program, weights, inputs/outputs or metadata differ."""
    package = Path(package)
    manifest_path = package / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
        entries = manifest["itemInfoEntries"]
        root_path = entries[manifest["rootModelIdentifier"]]["path"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise PackageContentError(
            f"package '{package}' has no readable {MANIFEST} naming its root model: {error!r}"
        ) from error
    spec_rel = f"{DATA_DIR}/{root_path}"
    if not (package / spec_rel).is_file():
        raise PackageContentError(f"package '{package}' lacks its model spec '{spec_rel}'")

    digest = hashlib.sha256(DIGEST_FORMAT)
    for rel in _package_files(package):
        path = package / rel
        if rel == MANIFEST:
            _update_record(digest, rel, _canonical_manifest(manifest))
        elif rel == spec_rel:
            _update_record(digest, rel, _canonical_spec(path))
        else:
            _update_file(digest, rel, path)
    return digest.hexdigest()


def _package_files(package: Path) -> list[str]:
    """Relative POSIX paths of the package's files, sorted as strings, without markers."""
    return sorted(
        p.relative_to(package).as_posix()
        for p in package.rglob("*")
        if p.is_file() and p.name not in SNAKEMAKE_MARKERS
    )


def _canonical_manifest(manifest: dict[str, Any]) -> bytes:
    """The manifest with its item entries keyed by path and role instead of random UUIDs."""
    root = manifest["rootModelIdentifier"]
    items = sorted(
        (
            {**entry, "root": identifier == root}
            for identifier, entry in manifest["itemInfoEntries"].items()
        ),
        key=lambda entry: (str(entry.get("path")), json.dumps(entry, sort_keys=True)),
    )
    rest = {
        key: value
        for key, value in manifest.items()
        if key not in ("itemInfoEntries", "rootModelIdentifier")
    }
    canonical = {**rest, "itemInfoEntries": items}
    return json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()


def _canonical_spec(path: Path) -> bytes:
    """The model spec without its conversion date, serialized with sorted map entries."""
    spec = _model_proto().Model()
    try:
        spec.ParseFromString(path.read_bytes())
    except Exception as error:  # google.protobuf.message.DecodeError, or a upb RuntimeError
        raise PackageContentError(f"model spec '{path}' cannot be parsed: {error!r}") from error
    user_defined = spec.description.metadata.userDefined
    if CONVERSION_DATE_KEY in user_defined:  # the day of the conversion, not of the model
        del user_defined[CONVERSION_DATE_KEY]
    # Sorted map entries (op inputs/attributes, functions, metadata): coremltools writes them
    # in upb's hash order, which differs from process to process.
    return spec.SerializeToString(deterministic=True)


def _model_proto() -> Any:
    """coremltools' generated ``Model_pb2``, loaded without importing coremltools itself."""
    loaded = sys.modules.get("coremltools.proto.Model_pb2") or sys.modules.get(
        f"{_PRIVATE_PROTO}.Model_pb2"
    )
    if loaded is not None:
        return loaded
    found = importlib.util.find_spec("coremltools")  # locates the package, runs nothing
    if found is None or not found.submodule_search_locations:
        raise ModuleNotFoundError("coremltools is needed to read a package's model spec")
    proto_dir = Path(next(iter(found.submodule_search_locations))) / "proto"
    spec = importlib.util.spec_from_file_location(
        _PRIVATE_PROTO, proto_dir / "__init__.py", submodule_search_locations=[str(proto_dir)]
    )
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"coremltools' proto package is missing under {proto_dir}")
    package = importlib.util.module_from_spec(spec)
    sys.modules[_PRIVATE_PROTO] = package
    try:
        spec.loader.exec_module(package)
        return importlib.import_module(f"{_PRIVATE_PROTO}.Model_pb2")
    except BaseException:
        for name in [n for n in sys.modules if n.split(".")[0] == _PRIVATE_PROTO]:
            del sys.modules[name]
        raise


def _update_record(digest: Any, rel: str, content: bytes) -> None:
    _update_header(digest, rel, len(content))
    digest.update(content)


def _update_file(digest: Any, rel: str, path: Path) -> None:
    _update_header(digest, rel, path.stat().st_size)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)


def _update_header(digest: Any, rel: str, size: int) -> None:
    """Length-prefixed name and size, so no two file lists can hash to one byte stream."""
    name = rel.encode()
    digest.update(len(name).to_bytes(8, "big") + name + size.to_bytes(8, "big"))
