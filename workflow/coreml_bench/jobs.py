"""The one adapter between Snakemake jobs and the stages.

``workflow/scripts/run_stage.py`` (every rule's script) calls :func:`run`, which looks up the
job's rule in ``STAGES``: each entry rebuilds the typed objects from the rule's plain-JSON
params once and calls one stage function, which writes its own outputs and manifest. Rules
stay a few lines and the logic stays importable and testable without Snakemake.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .aggregate.stage import aggregate
from .aggregate.tables import TableRow
from .compress import ALGORITHMS
from .compress.mixed_precision import MixedPrecision, select_mixed_precision
from .compress.stage import compress_package
from .compress.torch_stage import compress_with_torch, torch_job_fingerprint
from .convert import ConversionSettings, convert_model
from .data import DATA_KINDS, DataSelection
from .data.transforms import Preprocessing
from .download import download_config_file, download_weights, import_package
from .evaluate.stage import evaluate_package
from .executor.runtime import compile_to
from .fingerprint import CURRENT_RULE, record_provenance
from .io import copy_atomic, read_json, write_json_atomic
from .mlpackage.files import verify_package
from .models import ModelSpec
from .profile.settings import ProfilingSettings
from .profile.stage import profile_package
from .registry import load_plugins
from .sensitivity.calibration import CalibrationData, calibration_batches
from .sensitivity.measure import layer_sensitivity, reference_outputs
from .sensitivity.report import sensitivity_tables
from .sensitivity.settings import CalibrationSettings
from .tracking.settings import TrackingSettings
from .tracking.study import VariantFiles, track_study
from .train.baseline import train_baseline
from .train.recipe import TrainingRecipe


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
    context: dict[str, Any] = {"model": wildcards["model"]}
    if "experiment" in wildcards:
        context["experiment"] = wildcards["experiment"]
        context["trial"] = int(wildcards["trial"])
    return context


# ------------------------------------------------------------------- typed from params


def _model(smk: Any) -> Any:
    return ModelSpec.model_validate(smk.params.model)


def _data_source(data: dict[str, Any], role: str = "evaluation") -> Any:
    """A data kind's params object from its JSON (the registry says which class)."""

    kind = DATA_KINDS[data["kind"]]
    params = kind.params if role == "evaluation" else kind.training_params
    assert params is not None, f"data kind {data['kind']!r} has no {role} role"
    return params.model_validate(data)


def _evaluation(smk: Any) -> Any:
    data = smk.params.data
    return DataSelection(
        source=_data_source(data["evaluation"]),
        batch_size=data["batch_size"],
        limit=data["limit"],
    )


def _training(smk: Any) -> Any:
    training = smk.params.training
    return None if training is None else _data_source(training, role="training")


def _compression(smk: Any) -> Any:
    """The algorithm's params; a published config file read from its downloaded copy."""
    compression = smk.params.compression
    params = ALGORITHMS[compression["algorithm"]].params.model_validate(compression)
    if smk.input.get("config_yaml"):
        params = params.with_config_file(Path(smk.input.config_yaml))
    return params


def _calibration(data: dict[str, Any]) -> tuple[DataSelection, CalibrationSettings]:
    """The calibration split's data set and views, from ``calibration_params`` JSON."""
    selection = DataSelection(
        source=_data_source(data["evaluation"]), batch_size=data["batch_size"], limit=data["limit"]
    )
    return selection, CalibrationSettings.model_validate(data["calibration"])


def _compress_inputs(smk: Any) -> dict[str, Any]:
    """What the algorithm reads beyond the package, as its ``apply`` keywords."""
    inputs: dict[str, Any] = {}
    if smk.input.get("selection"):
        inputs["selection"] = Path(smk.input.selection)
    if smk.params.calibration is not None:
        data, settings = _calibration(smk.params.calibration)
        preprocessing = Preprocessing.model_validate(smk.params.calibration["preprocessing"])
        inputs["calibration"] = CalibrationData(
            package=Path(smk.input.package),
            batches=calibration_batches(data, preprocessing, settings),
        )
    return inputs


def _conversion(smk: Any) -> Any:
    return ConversionSettings.model_validate(smk.params.conversion)


def _recipe(value: dict[str, Any] | None) -> Any:
    return None if value is None else TrainingRecipe.model_validate(value)


def _verified_package(smk: Any) -> Path:
    """The job's input package, checked against the digest its manifest recorded."""
    package = Path(smk.input.package)
    verify_package(package, Path(smk.input.manifest))
    return package


# -------------------------------------------------------------------------- the stages


def download_weights_job(smk: Any) -> None:
    download_weights(
        model=_model(smk), weights=Path(smk.output.weights), manifest=Path(smk.output.manifest)
    )


def download_init_weights_job(smk: Any) -> None:
    model = _model(smk)
    download_weights(
        model=model.model_copy(update={"source": model.source.init}),  # type: ignore[attr-defined]
        weights=Path(smk.output.weights),
        manifest=Path(smk.output.manifest),
    )


def download_compression_config_job(smk: Any) -> None:
    source = smk.params.source
    download_config_file(
        url=source["url"],
        sha256=source["sha256"],
        experiment=smk.wildcards.experiment,
        config=Path(smk.output.config),
        manifest=Path(smk.output.manifest),
    )


def import_package_job(smk: Any) -> None:
    import_package(
        model=_model(smk),
        archive=Path(smk.output.archive),
        package=Path(smk.output.package),
        manifest=Path(smk.output.manifest),
    )


def train_baseline_job(smk: Any) -> None:
    _limit_threads(smk.threads)
    model = _model(smk)
    train_baseline(
        model=model,
        recipe=_recipe(smk.params.model["source"]["recipe"]),
        training=_training(smk),
        evaluation=_evaluation(smk),
        weights=Path(smk.output.weights),
        manifest=Path(smk.output.manifest),
        checkpoint_dir=Path(smk.params.checkpoint_dir),
        init=Path(smk.input.init) if smk.input.get("init") else None,
    )


def convert_job(smk: Any) -> None:
    _limit_threads(smk.threads)
    convert_model(
        model=_model(smk),
        conversion=_conversion(smk),
        weights=Path(smk.input.weights),
        package=Path(smk.output.package),
        manifest=Path(smk.output.manifest),
    )


def check_torch_settings_job(smk: Any) -> None:
    """coremltools' own validation of one torch-side experiment's settings (see torch_side).

    Settings without a coremltools config (e.g. a plugin's own torch code) have nothing to
    check; the record says so.
    """
    compression = smk.params.compression
    params = _compression(smk)
    check = getattr(params, "coremltools_config", None)
    config = None if check is None else check()
    write_json_atomic(
        Path(smk.output[0]),
        {
            "stage": "check_torch_settings",
            "experiment": smk.wildcards.experiment,
            "compression": compression,
            "coremltools_config": None if config is None else type(config).__name__,
            "checked_by_coremltools": config is not None,
            "provenance": record_provenance("check_torch_settings"),
        },
    )


def compress_job(smk: Any) -> None:
    compress_package(
        params=_compression(smk),
        baseline_package=_verified_package(smk),
        baseline_manifest=read_json(smk.input.manifest),
        package=Path(smk.output.package),
        manifest=Path(smk.output.manifest),
        context=_context(smk),
        inputs=_compress_inputs(smk),
    )


def compress_torch_job(smk: Any) -> None:
    _limit_threads(smk.threads)
    context = _context(smk)
    recipe = _recipe(smk.params.recipe)
    params, model, weights = _compression(smk), _model(smk), Path(smk.input.weights)
    evaluation, training = _evaluation(smk), _training(smk)
    fingerprint = None
    if recipe is not None:
        fingerprint = torch_job_fingerprint(
            params=params, recipe=recipe, model=model, evaluation=evaluation,
            training=training, weights=weights,
        )  # fmt: skip
    # Records only: the epoch history lands in the manifest and the track rule mirrors it.
    compress_with_torch(
        params=params,
        recipe=recipe,
        model=model,
        evaluation=evaluation,
        training=training,
        conversion=_conversion(smk),
        weights=weights,
        fingerprint=fingerprint,
        baseline_manifest=read_json(smk.input.manifest),
        package=Path(smk.output.package),
        manifest=Path(smk.output.manifest),
        checkpoint_dir=Path(smk.params.checkpoint_dir),
        context=context,
    )


def compile_program_job(smk: Any) -> None:
    compile_to(_verified_package(smk), Path(smk.output[0]))


def evaluate_job(smk: Any) -> None:
    _limit_threads(smk.threads)
    weights = smk.input.get("weights")
    evaluate_package(
        package=_verified_package(smk),
        weights=Path(weights) if weights else None,
        model=_model(smk),
        data=_evaluation(smk),
        backend=smk.params.backend,
        device=smk.params.device,
        output=Path(smk.output[0]),
        context=_context(smk),
    )


def profile_job(smk: Any) -> None:
    # The rule claims all cores for isolation; torch itself uses the configured threads.
    profiling = ProfilingSettings.model_validate(smk.params.profiling)
    profile_package(
        package=_verified_package(smk),
        model=_model(smk),
        backend=profiling.backend,
        run=profiling.latency_run(),
        output=Path(smk.output[0]),
        context=_context(smk),
    )


def sensitivity_reference_job(smk: Any) -> None:
    _limit_threads(smk.threads)
    data, settings = _calibration(smk.params.data)
    reference_outputs(
        package=_verified_package(smk),
        data=data,
        preprocessing=_model(smk).preprocessing,
        settings=settings,
        output=Path(smk.output.outputs),
        record=Path(smk.output.record),
        context=_context(smk),
    )


def sensitivity_job(smk: Any) -> None:
    _limit_threads(smk.threads)
    data, settings = _calibration(smk.params.data)
    fp16 = Path(smk.input.fp16_package)
    verify_package(fp16, Path(smk.input.fp16_manifest))
    layer_sensitivity(
        fp16_package=fp16,
        package=_verified_package(smk),
        reference=Path(smk.input.reference),
        data=data,
        preprocessing=_model(smk).preprocessing,
        settings=settings,
        setting=smk.params.setting,
        output=Path(smk.output[0]),
        context={"model": smk.wildcards.model, "experiment": smk.wildcards.experiment},
    )


def sensitivity_tables_job(smk: Any) -> None:
    sensitivity_tables(
        records=[Path(p) for p in smk.input.records],
        table_csv=Path(smk.output.csv),
        table_md=Path(smk.output.markdown),
        plots=[Path(p) for p in smk.output.plots],
    )


def search_mixed_precision_job(smk: Any) -> None:
    params = MixedPrecision.model_validate(smk.params.compression)
    records = dict(zip(params.candidates, (read_json(p) for p in smk.input.records), strict=True))
    candidates = {
        name: ALGORITHMS[value["algorithm"]].params.model_validate(value)
        for name, value in smk.params.candidates.items()
    }
    size_of = smk.input.get("size_of")
    select_mixed_precision(
        params=params,
        records=records,
        candidates=candidates,
        size_of_bytes=read_json(size_of)["package_bytes"] if size_of else None,
        selection=Path(smk.output.selection),
        output=Path(smk.output.record),
        context={"model": smk.wildcards.model, "experiment": smk.wildcards.experiment},
    )


def track_job(smk: Any) -> None:
    """The study's MLflow mirror, from the records of every variant (one local job)."""
    variants = [
        VariantFiles(
            model=v["model"],
            experiment=v["experiment"],
            trial=int(v["trial"]),
            package=Path(v["package"]),
            manifest=Path(v["manifest"]),
            evaluation=Path(v["evaluation"]),
            profile=Path(v["profile"]),
            logs=[Path(p) for p in v["logs"]],
            run_params=v["run_params"],
        )
        for v in smk.params.variants
    ]
    gate = smk.input.get("gate_csv")
    sensitivity = smk.input.get("sensitivity_csv")
    track_study(
        variants=variants,
        tracking=TrackingSettings.model_validate(smk.params.tracking),
        study=smk.params.study,
        summary_csv=Path(smk.input.summary_csv),
        summary_files=[Path(smk.input.summary_md), Path(smk.input.plot), Path(smk.input.frontier)],
        gate_csv=Path(gate) if gate else None,
        gate_files=[Path(smk.input.gate_md)] if gate else [],
        output=Path(smk.output[0]),
        sensitivity_csv=Path(sensitivity) if sensitivity else None,
        sensitivity_files=[Path(p) for p in smk.input.get("sensitivity_files", [])],
        searches=[Path(p) for p in smk.input.get("searches", [])],
        search_files=[Path(p) for p in smk.input.get("selections", [])],
    )


def aggregate_job(smk: Any) -> None:
    aggregate(
        manifests=[Path(p) for p in smk.input.manifests],
        evaluations=[Path(p) for p in smk.input.evaluations],
        profiles=[Path(p) for p in smk.input.profiles],
        rows=[TableRow.model_validate(row) for row in smk.params.rows],
        table_csv=Path(smk.output.csv),
        table_md=Path(smk.output.markdown),
        plot=Path(smk.output.plot),
        frontier=Path(smk.output.frontier),
    )


def reference_report_job(smk: Any) -> None:
    from .reference.stage import compare_with_published

    if smk.params.reference is None:
        raise ValueError(
            "no model of this config has published rows (their display names are not in "
            "reference.published), or reference.enabled is false: there is nothing to gate"
        )
    compare_with_published(
        rows=[TableRow.model_validate(row) for row in smk.params.rows],
        manifests=[Path(p) for p in smk.input.manifests],
        evaluations=[Path(p) for p in smk.input.evaluations],
        profiles=[Path(p) for p in smk.input.profiles],
        reference=smk.params.reference,
        study=smk.params.study,
        table_csv=Path(smk.output.csv),
        table_md=Path(smk.output.markdown),
    )


def check_job(smk: Any) -> None:
    from .reference.stage import check_gate

    check_gate(Path(smk.input.csv), Path(smk.output[0]))


def publish_tables_job(smk: Any) -> None:
    """Copy the finished tables and plot into place, each atomically."""
    for name in ("csv", "markdown", "plot", "frontier"):
        copy_atomic(Path(smk.input[name]), Path(smk.output[name]))


STAGES: dict[str, Callable[[Any], None]] = {
    "download_weights": download_weights_job,
    "import_package": import_package_job,
    "train_baseline": train_baseline_job,
    "download_init_weights": download_init_weights_job,
    "download_compression_config": download_compression_config_job,
    "convert": convert_job,
    "check_torch_settings": check_torch_settings_job,
    "compress": compress_job,
    "compress_torch": compress_torch_job,
    "compile_program": compile_program_job,
    "sensitivity_reference": sensitivity_reference_job,
    "sensitivity": sensitivity_job,
    "sensitivity_tables": sensitivity_tables_job,
    "search_mixed_precision": search_mixed_precision_job,
    "evaluate": evaluate_job,
    "profile": profile_job,
    "track": track_job,
    "aggregate": aggregate_job,
    "publish_tables": publish_tables_job,
    "reference_report": reference_report_job,
    "check": check_job,
}


def run(smk: Any) -> None:
    """Run the stage of this job's rule, with its log file as stdout/stderr/logging."""
    CURRENT_RULE.set(smk.rule)
    with job_logging(smk.log[0]):
        load_plugins()
        try:
            stage = STAGES[smk.rule]
        except KeyError:
            raise KeyError(f"rule {smk.rule!r} has no stage; known: {sorted(STAGES)}") from None
        stage(smk)
