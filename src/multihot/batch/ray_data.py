"""``multihot predict --engine ray``: a file of texts labelled by a pool of Ray actors.

The file is read, labelled and written through Ray Data, on the cluster in ``RAY_ADDRESS`` or,
without one, on a Ray instance started on this machine (``ray.init`` reads the variable). Each
actor builds a :class:`multihot.batch.predictor.BatchPredictor` (the run loaded once per actor)
and labels batches of ``chunk_size`` rows.

Three promises, and how they are kept:

- **The rows of ``predict``, in input order, with its probabilities.** The dataset runs with
  ``preserve_order``. A text's probability depends, in its last float bits, on the texts it shares
  a padded forward pass with, and ``predict`` groups texts by length within chunks of
  ``--chunk-size`` rows; so the rows are cut into blocks of exactly ``chunk_size`` rows
  (``repartition(target_num_rows_per_block=..., strict=True)``), and each actor call labels one
  such chunk, the one ``predict`` would. The output is then the same as ``predict``'s, not just
  close to it.
- **No partial output.** A file is written on the driver, batch by batch in input order, to a
  temporary file beside it and renamed into place at the end (a ``.jsonl`` or ``.csv`` file
  exactly as ``predict`` writes it, or one ``.parquet`` file). A directory (a name without a
  suffix) is written by the workers, in parallel, as Parquet part files into a temporary directory
  beside it, renamed into place at the end; it must be on a file system every node shares.
- **A killed actor is retried.** Ray Data restarts an actor that died (killed, out of memory, its
  node lost) and gives its batch to an actor again: its default for actor pools (``max_restarts``
  and ``max_task_retries`` of -1), kept, since passing them to ``map_batches`` is deprecated in
  Ray 2.60. There is no limit, so a batch that kills its actor every time is retried until the job
  is stopped; a text is truncated or read in windows of bounded size, so no one text should.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import json
import logging
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from multihot.artifacts.rundir import ONNX_FILE
from multihot.artifacts.runs import read_run_files
from multihot.batch.options import BatchOptions, RayOptions
from multihot.batch.predictor import BatchPredictor, prediction_columns
from multihot.core import errors
from multihot.core.errors import ConfigError, DataError, MultihotError, RunDirError
from multihot.core.files import replaced, write_dir_atomic
from multihot.data.readers import iter_text_batches
from multihot.data.writers import check_new_file, open_writer

if TYPE_CHECKING:  # ray is optional: imported where it is used
    import ray.data

logger = logging.getLogger(__name__)

INPUT_SUFFIXES = (".parquet", ".jsonl")
"""What Ray Data reads here: Parquet or JSON lines, a file or a directory of such files."""
FILE_OUTPUTS = {".jsonl": "jsonl", ".csv": "csv", ".parquet": "parquet"}
"""An output name with one of these suffixes is one file; a name without a suffix, a directory."""


# ------------------------------------------------------------------------------------- session
@contextlib.contextmanager
def ray_session(job: RayOptions) -> Iterator[None]:
    """Ray, ready for ``job``, for the length of the block; datasets made in it keep row order.

    Connects to the cluster in ``RAY_ADDRESS``; without one, starts Ray on this machine with one
    CPU slot more than the actors take (Ray Data's read and write tasks need a slot of their own,
    or wait forever behind actors holding them all: ray-project/ray#44687). Ray already started by
    the caller is used as it is. Shuts down what it started.

    Raises:
        ConfigError: the actors would take every CPU of the cluster.
    """
    # optional: ray (the ray extra)
    import ray
    from ray.data import DataContext

    started = not ray.is_initialized()
    if started:
        if os.environ.get("RAY_ADDRESS"):
            ray.init()
        else:
            slots = max(os.cpu_count() or 1, math.ceil(job.actor_cpus) + 1)
            logger.info("starting Ray on this machine: %d CPU slots (no RAY_ADDRESS)", slots)
            ray.init(num_cpus=slots, include_dashboard=False)
    try:
        _check_cpus(float(ray.cluster_resources().get("CPU", 0)), job)
        # Datasets copy the current context when they are made: set here, restored after.
        options = DataContext.get_current().execution_options
        before, options.preserve_order = options.preserve_order, True
        try:
            yield
        finally:
            options.preserve_order = before
    finally:
        if started:
            ray.shutdown()


def _check_cpus(total: float, job: RayOptions) -> None:
    if job.actor_cpus + 1 > total:
        most = max(0, math.floor((total - 1) / job.cpus_per_actor))
        raise ConfigError(
            f"--concurrency {job.concurrency}: {job.concurrency} actors of {job.cpus_per_actor:g} "
            f"CPU would leave no CPU of the Ray cluster's {total:g} for reading and writing, and "
            f"the job would wait forever; expected at most {most}"
        )


# --------------------------------------------------------------------------------------- input
def input_files(path: str | Path) -> list[Path]:
    """The files of ``path`` (a file, or a directory of files of one format), checked to be
    Parquet or JSON lines, in name order (the order Ray reads them in)."""
    path = Path(path)
    if path.is_dir():
        # As Ray lists a directory: recursively, leaving out names that start with . or _.
        files = sorted(
            (p for p in path.rglob("*") if p.is_file() and not _hidden(p.relative_to(path))),
            key=str,
        )
        if not files:
            raise DataError(f"{path}: an empty directory; expected .parquet or .jsonl files")
    elif path.is_file():
        files = [path]
    else:
        raise DataError(f"{path}: no such file or directory")
    suffixes = {p.suffix.lower() for p in files}
    if len(suffixes) != 1 or not suffixes <= set(INPUT_SUFFIXES):
        raise DataError(
            f"{path}: --engine ray reads {' or '.join(INPUT_SUFFIXES)} files (or a directory of "
            f"files of one of them), found {', '.join(sorted(suffixes))}: convert the data, or "
            "leave out --engine ray"
        )
    return files


def _hidden(relative: Path) -> bool:
    return str(relative).startswith((".", "_"))


def check_input(path: str | Path, text_col: str) -> list[Path]:
    """:func:`input_files`, the first one's text column and first text checked by the reader
    ``predict`` uses, on the driver: a wrong ``--text-col`` fails before Ray starts."""
    files = input_files(path)
    next(iter_text_batches(files[0], text_col=text_col, batch_size=1))
    return files


def read_texts(path: str | Path, text_col: str) -> ray.data.Dataset:
    """The texts of a Parquet or JSON lines file (or directory of them, :func:`input_files`) as a
    dataset of one column, ``text_col``."""
    import ray.data  # optional: ray (the ray extra)

    source = str(path)
    if input_files(path)[0].suffix.lower() == ".parquet":
        return ray.data.read_parquet(source, columns=[text_col])
    # Only the text column is parsed, as a string: other columns of any shape are skipped.
    parse = pa_json.ParseOptions(
        explicit_schema=pa.schema([(text_col, pa.string())]), unexpected_field_behavior="ignore"
    )
    return ray.data.read_json(source, parse_options=parse, file_extensions=["jsonl"])


# ---------------------------------------------------------------------------------- prediction
def add_predictions(
    ds: ray.data.Dataset,
    options: BatchOptions,
    job: RayOptions,
    predictor: type[BatchPredictor] = BatchPredictor,
) -> ray.data.Dataset:
    """``ds`` with the prediction columns of :class:`BatchPredictor` (or the subclass
    ``predictor``) computed by ``job.concurrency`` actors, on chunks of exactly
    ``job.chunk_size`` rows of ``ds`` in order (the chunks ``predict`` labels)."""
    from ray.data import ActorPoolStrategy  # optional: ray (the ray extra)

    if "strict" not in inspect.signature(ds.repartition).parameters:
        raise ConfigError("--engine ray needs ray[data] 2.60 or newer: pip install -U 'ray[data]'")
    return ds.repartition(target_num_rows_per_block=job.chunk_size, strict=True).map_batches(
        predictor,
        fn_constructor_kwargs=options.kwargs(),
        batch_size=job.chunk_size,
        batch_format="pyarrow",
        compute=ActorPoolStrategy(size=job.concurrency),
        num_cpus=job.cpus_per_actor,
        num_gpus=job.gpus_per_actor or None,
    )


def predict_file(
    input_path: str | Path,
    output: str | Path,
    options: BatchOptions,
    job: RayOptions,
    predictor: type[BatchPredictor] = BatchPredictor,
) -> int:
    """Label the texts of ``input_path`` on Ray and write them to ``output``; the rows written.

    What ``multihot predict RUN INPUT --engine ray -o OUTPUT`` is.

    Args:
        input_path: a ``.parquet`` or ``.jsonl`` file, or a directory of files of one of them.
        output: a ``.jsonl`` or ``.csv`` file (written as ``predict`` writes it), a ``.parquet``
            file (the text, ``labels`` and a float32 column per label), or a name without a suffix:
            a directory of Parquet part files, written by the workers (on a cluster, on a file
            system every node shares). A file is replaced, as ``predict`` replaces its output; a
            directory must not exist yet.
        options: the run and how to label (:class:`BatchOptions`).
        job: actors, chunk size, part files (:class:`RayOptions`).
        predictor: the callable class the actors build (a subclass, to add to what it does).

    Raises:
        MultihotError: a bad input, output, run or option, or a text that cannot be labelled.
    """
    output = Path(output)
    files = read_run_files(options.run, for_onnx=options.backend == "onnx")
    text_col = options.text_col or files.config.data.text_col
    options = BatchOptions(**{**options.kwargs(), "text_col": text_col})
    kind = check_output(output, input_path, options.run)
    check_input(input_path, text_col)
    _check_graph(options)
    with ray_session(job):
        ds = add_predictions(read_texts(input_path, text_col), options, job, predictor)
        columns = prediction_columns(files.labels.names, options.prefix)
        with _user_errors(input_path, text_col):
            if kind == "directory":
                return _write_directory(ds, output, job.rows_per_file)
            if kind == "parquet":
                return _write_parquet_file(ds, output)
            return _write_lines(ds, output, text_col, files.labels.names, columns)


def _check_graph(options: BatchOptions) -> None:
    """The ONNX graph the actors would load is there: a run not exported yet is the likely
    mistake, and is better told before Ray starts than from every actor (the actors check the
    graph itself, with the run, as every ONNX prediction does)."""
    if options.backend != "onnx":
        return
    graph = options.onnx_model or options.run / ONNX_FILE
    if not graph.is_file():
        raise RunDirError(
            f"{graph}: no such ONNX model; write it with 'multihot export {options.run} --format "
            "onnx'" + (f" -o {graph}" if options.onnx_model is not None else "")
        )


# -------------------------------------------------------------------------------------- output
def check_output(output: Path, input_path: str | Path, run: Path) -> str:
    """The kind of ``output`` (``jsonl``, ``csv``, ``parquet`` or ``directory``), once it can be
    written: never over the input, never inside the run directory, a directory never over one."""
    kind = FILE_OUTPUTS.get(output.suffix.lower()) if output.suffix else "directory"
    if kind is None:
        raise ConfigError(
            f"{output}: unsupported output; expected a file name ending in "
            f"{', '.join(FILE_OUTPUTS)}, or a directory name without a suffix (Parquet files)"
        )
    if kind != "directory":
        check_new_file(output, inputs=input_files(input_path), read_dirs=[run], force=True)
        return kind
    if output.exists() or output.is_symlink():
        raise ConfigError(
            f"{output}: exists; a directory output is written whole: remove it or choose another "
            "name"
        )
    if not output.parent.is_dir():
        raise ConfigError(f"{output}: directory {output.parent} does not exist; create it first")
    target = output.parent.resolve() / output.name
    for directory in (Path(run), Path(input_path)):
        if directory.is_dir() and directory.resolve() in target.parents:
            raise ConfigError(f"{output}: is inside {directory}, which this command reads")
    return kind


def iter_predictions(
    ds: ray.data.Dataset, text_col: str, columns: list[str]
) -> Iterator[tuple[list[str], np.ndarray, list[list[str]]]]:
    """``(texts, probs, labels)`` per block of ``ds`` (made by :func:`add_predictions`), in order:
    what :class:`multihot.data.writers.PredictionWriter` writes."""
    for table in _tables(ds):
        probs = np.column_stack([table.column(name).to_numpy() for name in columns[1:]])
        yield table.column(text_col).to_pylist(), probs, table.column(columns[0]).to_pylist()


def _tables(ds: ray.data.Dataset) -> Iterator[pa.Table]:
    """The blocks of ``ds`` as Arrow tables, in order, to the driver."""
    for table in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        yield cast("pa.Table", table)


def _write_lines(ds, output: Path, text_col: str, label_names, columns) -> int:
    with open_writer(output, label_names) as writer:
        for texts, probs, labels in iter_predictions(ds, text_col, columns):
            writer.write(texts, probs, labels)
    return writer.count


def _write_parquet_file(ds: ray.data.Dataset, output: Path) -> int:
    rows = 0
    with replaced(output) as tmp:
        tables = _tables(ds)
        first = next(tables, None)
        if first is None:
            raise DataError(f"{output}: no rows to write")
        with pq.ParquetWriter(tmp, first.schema) as writer:
            for table in itertools.chain([first], tables):
                writer.write_table(table)
                rows += table.num_rows
    return rows


def _write_directory(ds: ray.data.Dataset, output: Path, rows_per_file: int) -> int:
    def fill(tmp: Path) -> None:
        ds.write_parquet(str(tmp), min_rows_per_file=rows_per_file)

    write_dir_atomic(output, fill)
    return sum(pq.read_metadata(part).num_rows for part in sorted(output.glob("*.parquet")))


@contextlib.contextmanager
def _user_errors(source: str | Path, text_col: str) -> Iterator[None]:
    """A :class:`MultihotError` raised in an actor (a bad text), or a line the JSON reader cannot
    read, as the one-line error it is, not Ray's exception around it (whose message is a
    traceback)."""
    try:
        yield
    except Exception as err:
        found = _user_error(err)
        if found is not None:
            raise found from None
        if _caused_by(err, json.JSONDecodeError):
            raise DataError(
                f"{source}: Ray Data cannot read it as JSON lines with a string in column "
                f"{text_col!r} on every line (an object per line; a number, list or object there "
                "is not a text)"
            ) from None
        raise


def _caused_by(err: BaseException, kind: type[BaseException]) -> bool:
    """Whether ``kind`` is in the chain of ``err``'s causes (through Ray's ``cause``)."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return True
        seen.add(id(current))
        current = getattr(current, "cause", None) or current.__cause__ or current.__context__
    return False


_WORKER_ERROR = re.compile(r"^multihot\.core\.errors\.(\w+): (.+)$", re.MULTILINE)
"""The last line of a multihot error's traceback, as Ray passes a worker's traceback on."""


def _user_error(err: BaseException) -> MultihotError | None:
    """The MultihotError behind ``err``, or None for another failure.

    One raised on the driver is ``err`` itself. One raised in an actor is not in the chain of
    causes: Ray Data wraps it in a UserCodeException, whose own cause stays in the worker, and only
    the worker's traceback, in the message, reaches the driver; its last line names it.
    """
    from ray.exceptions import RayError  # optional: ray (the ray extra)

    if isinstance(err, MultihotError) and not isinstance(err, RayError):
        return err
    found = _WORKER_ERROR.findall(str(err))
    if not found:
        return None
    name, message = found[-1]
    kind = getattr(errors, name, MultihotError)
    return kind(message) if isinstance(kind, type) and issubclass(kind, MultihotError) else None
