"""Adapters between Snakemake jobs and the stage functions.

Each workflow/scripts/<stage>.py calls one of these with Snakemake's ``snakemake`` object, so
rules stay a few lines and the logic stays importable and testable without Snakemake.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def job_logging(log_path: str | Path) -> Iterator[None]:
    """Send logging, stdout and stderr (coremltools/tqdm progress) to the job's log file."""
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", buffering=1) as handle:
        handler = logging.StreamHandler(handle)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        with contextlib.redirect_stdout(handle), contextlib.redirect_stderr(handle):
            try:
                yield
            except BaseException:
                logging.getLogger("coreml_bench").exception("job failed")
                raise
            finally:
                root.removeHandler(handler)


def _limit_threads(threads: int) -> None:
    # Parallel jobs share the machine's cores; torch would otherwise take all of them each.
    import torch

    torch.set_num_threads(max(1, int(threads)))


def _context(smk: Any) -> dict[str, Any]:
    wildcards = dict(smk.wildcards.items())
    context = {"model": wildcards["model"]}
    if "experiment" in wildcards:
        context["experiment"] = wildcards["experiment"]
        context["trial"] = int(wildcards["trial"])
    return context


def download_job(smk: Any) -> None:
    from pydantic import TypeAdapter

    from .download import fetch_weights
    from .manifest import StageTimer, write_json_atomic
    from .models import build_model
    from .sources import WeightsSource

    with job_logging(smk.log[0]):
        timer = StageTimer()
        model_cfg = smk.params.model
        source = TypeAdapter(WeightsSource).validate_python(model_cfg["source"])
        record = fetch_weights(
            source,
            Path(smk.output.weights),
            build_model=lambda: build_model(model_cfg["architecture"], model_cfg["num_classes"]),
        )
        write_json_atomic(
            Path(smk.output.manifest),
            {"stage": "download", "model": model_cfg["id"], **record, "timing": timer.summary()},
        )


def import_package_job(smk: Any) -> None:
    """A published Core ML package becomes the model's fp16 baseline (in place of convert)."""
    from .download import fetch_coreml_package
    from .manifest import StageTimer, package_versions, write_json_atomic
    from .mlpackage import input_description, package_summary
    from .sources import CoreMLPackageSource

    with job_logging(smk.log[0]):
        timer = StageTimer()
        model_cfg = smk.params.model
        source = CoreMLPackageSource.model_validate(model_cfg["source"])
        package = Path(smk.output.package)
        with timer.section("download"):
            record = fetch_coreml_package(source, Path(smk.output.archive), package)
        write_json_atomic(
            Path(smk.output.manifest),
            {
                # "convert" on purpose: downstream stages treat this as the fp16 baseline.
                "stage": "convert",
                "model": model_cfg["id"],
                "package": str(package),
                "source": record,
                "input": input_description(package),
                **package_summary(package),
                "timing": timer.summary(),
                "versions": package_versions(),
            },
        )


def train_baseline_job(smk: Any) -> None:
    from .download import sha256_file
    from .manifest import StageTimer, package_versions, write_json_atomic
    from .train import train_baseline

    with job_logging(smk.log[0]):
        _limit_threads(smk.threads)
        timer = StageTimer()
        with timer.section("train"):
            result = train_baseline(
                model_cfg=smk.params.model,
                data_cfg=smk.params.data,
                weights=Path(smk.output.weights),
                checkpoint_dir=Path(smk.params.checkpoint_dir),
            )
        write_json_atomic(
            Path(smk.output.manifest),
            {
                "stage": "train",
                "model": smk.params.model["id"],
                "kind": "train",
                "origin": f"trained by the workflow on {smk.params.data['training']['kind']}",
                "sha256": sha256_file(Path(smk.output.weights)),
                "bytes": Path(smk.output.weights).stat().st_size,
                **result,
                "timing": timer.summary(),
                "versions": package_versions(),
            },
        )


def convert_job(smk: Any) -> None:
    from .convert import convert_model

    with job_logging(smk.log[0]):
        _limit_threads(smk.threads)
        convert_model(
            model_cfg=smk.params.model,
            conversion_cfg=smk.params.conversion,
            weights=Path(smk.input.weights),
            package=Path(smk.output.package),
            manifest=Path(smk.output.manifest),
        )


def compress_job(smk: Any) -> None:
    from .compress import compress_package
    from .manifest import read_json

    with job_logging(smk.log[0]):
        compress_package(
            compression=smk.params.compression,
            baseline_package=Path(smk.input.package),
            baseline_manifest=read_json(smk.input.manifest),
            package=Path(smk.output.package),
            manifest=Path(smk.output.manifest),
            context=_context(smk),
        )


def compress_torch_job(smk: Any) -> None:
    from .compress_torch import compress_with_torch
    from .manifest import read_json
    from .tracking import ARTIFACT_ROOT, LOCK_PATH, EpochLogger
    from .train import TrainingRecipe

    with job_logging(smk.log[0]):
        _limit_threads(smk.threads)
        context = _context(smk)
        recipe = smk.params.recipe
        tracking = smk.params.tracking
        logger = None
        if tracking["enabled"] and recipe is not None:
            logger = EpochLogger(
                tracking_uri=tracking["uri"],
                study=smk.params.study,
                artifact_root=ARTIFACT_ROOT,
                model_id=context["model"],
                experiment_id=context["experiment"],
                trial=context["trial"],
                fingerprint=TrainingRecipe.model_validate(recipe).fingerprint(),
                lock_path=LOCK_PATH,
            )
        try:
            compress_with_torch(
                compression=smk.params.compression,
                recipe=recipe,
                model_cfg=smk.params.model,
                data_cfg=smk.params.data,
                conversion_cfg=smk.params.conversion,
                weights=Path(smk.input.weights),
                baseline_manifest=read_json(smk.input.manifest),
                package=Path(smk.output.package),
                manifest=Path(smk.output.manifest),
                checkpoint_dir=Path(smk.params.checkpoint_dir),
                context=context,
                on_epoch_end=logger,
                record_extra=lambda: {"training_run_id": logger.run_id if logger else None},
            )
        except Exception:
            # An interrupted job (Ctrl-C, SIGTERM) leaves its MLflow run RUNNING on purpose:
            # the rerun resumes from the checkpoint and continues that run.
            if logger is not None:
                logger.finish("FAILED")
            raise
        if logger is not None:
            logger.finish()


def evaluate_job(smk: Any) -> None:
    from .evaluate import evaluate_package

    with job_logging(smk.log[0]):
        _limit_threads(smk.threads)
        weights = smk.input.get("weights")
        evaluate_package(
            package=Path(smk.input.package),
            weights=Path(weights) if weights else None,
            model_cfg=smk.params.model,
            data_cfg=smk.params.data,
            backend=smk.params.backend,
            device=smk.params.device,
            output=Path(smk.output[0]),
            context=_context(smk),
        )


def profile_job(smk: Any) -> None:
    from .profile import profile_package

    with job_logging(smk.log[0]):
        # The rule claims all cores for isolation; torch itself uses the configured threads.
        profile_package(
            package=Path(smk.input.package),
            model_cfg=smk.params.model,
            profiling_cfg=smk.params.profiling,
            output=Path(smk.output[0]),
            context=_context(smk),
        )


def track_job(smk: Any) -> None:
    from .tracking_records import track_variant

    with job_logging(smk.log[0]):
        track_variant(
            package=Path(smk.input.package),
            manifest=Path(smk.input.manifest),
            evaluation=Path(smk.input.evaluation),
            profile=Path(smk.input.profile),
            logs=[Path(p) for p in smk.input.logs],
            run_params=smk.params.run_params,
            tracking_cfg=smk.params.tracking,
            study=smk.params.study,
            output=Path(smk.output[0]),
            context=_context(smk),
        )


def aggregate_job(smk: Any) -> None:
    from .aggregate import aggregate

    with job_logging(smk.log[0]):
        aggregate(
            manifests=[Path(p) for p in smk.input.manifests],
            evaluations=[Path(p) for p in smk.input.evaluations],
            profiles=[Path(p) for p in smk.input.profiles],
            rows=smk.params.rows,
            table_csv=Path(smk.output.csv),
            table_md=Path(smk.output.markdown),
            plot=Path(smk.output.plot),
        )
