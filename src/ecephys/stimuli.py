"""Stimulus presentations, epochs, conditions and behaviour tables, as the AllenSDK 2.16.2 gives them.

Plain functions over an open ``h5py.File`` (readers) or over the presentations DataFrame
(everything else), so that each ``EcephysSession`` property is a one-line wrapper. The
pipeline reproduces ``EcephysSession.stimulus_presentations`` value for value, dtype for
dtype (text as object; parameters as object columns mixing floats and the string
``'null'``), but column by column with numpy instead of row loops.

Typical use::

    presentations, conditions = load_stimulus_tables(h5file)   # detailed parameters kept
    remove_detailed_parameters(presentations)                  # == session.stimulus_presentations
    get_stimulus_epochs(presentations)

Where we differ from the AllenSDK on purpose (see ``docs/differences.md``):
:func:`get_stimulus_epochs` applies its default 90 s threshold to ``spontaneous`` epochs and
ties in ``start_time`` keep file order. A session without a part answers as the AllenSDK's
does, minus its tracebacks and prints: no eye tracking gives None (logged at INFO), no
optotagging or invalid times a typed empty table; no running data or presentation tables
raise :class:`~ecephys.errors.MissingDataError`.

All times are float64 seconds on the session's master clock.
"""

from __future__ import annotations

import ast
import logging
import re
from collections.abc import Collection, Iterable, Mapping
from typing import NamedTuple

import h5py
import numpy as np
import pandas as pd

from ecephys.errors import MissingDataError, NWBFormatError
from ecephys.nwb.intervals import (
    concat_columns,
    interval_table,
    presentation_table_names,
    read_interval_columns,
    read_interval_table,
    read_presentation_columns,
    read_ragged_text,
)
from ecephys.nwb.table import column_names, is_ragged, object_text_columns, read_ids

__all__ = [
    "COLUMN_RENAMES",
    "DEFAULT_EPOCH_THRESHOLDS",
    "DETAILED_STIMULUS_PARAMETERS",
    "NON_STIMULUS_PARAMETERS",
    "NULL",
    "STIMULUS_RENAMES",
    "StimulusTables",
    "filter_invalid_times_by_tags",
    "get_inter_presentation_intervals_for_stimulus",
    "get_parameter_values_for_stimulus",
    "get_stimulus_epochs",
    "get_stimulus_parameter_values",
    "get_stimulus_table",
    "inter_presentation_intervals",
    "invalid_times",
    "load_stimulus_tables",
    "mask_invalid_presentations",
    "optogenetic_stimulation_epochs",
    "pupil_data",
    "read_stimulus_presentations",
    "remove_detailed_parameters",
    "remove_unused_parameters",
    "running_speed",
    "screen_gaze_data",
    "stimulus_conditions",
    "stimulus_names",
]

NULL = "null"
"""Marks a parameter that does not apply to a presentation (pandas groupby would drop NaN)."""

INVALID_PRESENTATION = "invalid_presentation"

DETAILED_STIMULUS_PARAMETERS = (
    "colorSpace",
    "flipHoriz",
    "flipVert",
    "depth",
    "interpolate",
    "mask",
    "opacity",
    "rgbPedestal",
    "tex",
    "texRes",
    "units",
    "rgb",
    "signalDots",
    "noiseDots",
    "fieldSize",
    "fieldShape",
    "fieldPos",
    "nDots",
    "dotSize",
    "dotLife",
    "color_triplet",
)
"""PsychoPy settings hidden from ``stimulus_presentations`` (shown with include_detailed_parameters)."""

NON_STIMULUS_PARAMETERS = ("start_time", "stop_time", "duration", "stimulus_block", "stimulus_condition_id")
"""Presentation columns that are not stimulus parameters."""

DEFAULT_EPOCH_THRESHOLDS: Mapping[str, float] = {"spontaneous": 90.0}
"""Epochs of these stimuli shorter than this many seconds are dropped by default."""

# Columns the AllenSDK moves to the front of the table (those present, in this order).
_FRONT_COLUMNS = (
    "stimulus_block",
    "stimulus_block_name",
    "image_index",
    "image_name",
    "movie_frame_index",
    "duration",
    "start_time",
    "end_time",
    "stop_time",
    "start_frame",
    "end_frame",
    "is_change",
    "is_image_novel",
    "omitted",
    "movie_repeat",
    "flashes_since_change",
    "trials_id",
)
# Integer columns the AllenSDK forces to int, filling missing values with -99.
_INT_COLUMNS = (
    "flashes_since_change",
    "image_index",
    "movie_repeat",
    "movie_frame_index",
    "repeat",
    "stimulus_index",
)
_INT_NULL = -99

_COLOR_TRIPLET = re.compile(r"\[(-{0,1}\d*\.\d*,\s*)*(-{0,1}\d*\.\d*)\]")
_MOVIE = re.compile(
    r"natural_movie_(?P<number>\d+|one|two|three|four|five|six|seven|eight|nine)(_shuffled){0,1}(_more_repeats){0,1}"
)
_SHUFFLED_MOVIE = re.compile(r"natural_movie_shuffled")
_NUMERAL = re.compile(r"(?P<number>\d+)")
_DIGIT_NAMES = {
    "1": "one",
    "2": "two",
    "3": "three",
    "4": "four",
    "5": "five",
    "6": "six",
    "7": "seven",
    "8": "eight",
    "9": "nine",
}
STIMULUS_RENAMES: Mapping[str, str] = {
    "": "spontaneous",
    "natural_movie_1": "natural_movie_one",
    "natural_movie_3": "natural_movie_three",
    "Natural Images": "natural_scenes",
    "flash_250ms": "flashes",
    "gabor_20_deg_250ms": "gabors",
    "drifting_gratings": "drifting_gratings",
    "static_gratings": "static_gratings",
    "contrast_response": "drifting_gratings_contrast",
    "Natural_Images_Shuffled": "natural_scenes_shuffled",
    "Natural_Images_Sequential": "natural_scenes_sequential",
    "natural_movie_1_more_repeats": "natural_movie_one",
    "natural_movie_shuffled": "natural_movie_one_shuffled",
    "motion_stimulus": "dot_motion",
    "drifting_gratings_more_repeats": "drifting_gratings_75_repeats",
    "signal_noise_test_0_200_repeats": "test_movie_one",
    "signal_noise_test_0": "test_movie_one",
    "signal_noise_test_1": "test_movie_two",
    "signal_noise_session_1": "dense_movie_one",
    "signal_noise_session_2": "dense_movie_two",
    "signal_noise_session_3": "dense_movie_three",
    "signal_noise_session_4": "dense_movie_four",
    "signal_noise_session_5": "dense_movie_five",
    "signal_noise_session_6": "dense_movie_six",
}
"""Legacy stimulus names and the names the released files use (missing names → spontaneous)."""

COLUMN_RENAMES: Mapping[str, str] = {
    "Contrast": "contrast",
    "Ori": "orientation",
    "SF": "spatial_frequency",
    "TF": "temporal_frequency",
    "Phase": "phase",
    "Color": "color",
    "Image": "frame",
    "Pos_x": "x_position",
    "Pos_y": "y_position",
}
"""Legacy parameter column names and their released names."""

Columns = dict[str, np.ndarray]

log = logging.getLogger(__name__)


class StimulusTables(NamedTuple):
    """What a session needs from the stimulus tables: presentations (masked) and conditions."""

    presentations: pd.DataFrame
    conditions: pd.DataFrame


# ---------------------------------------------------------------------------------------
# Reading and building the presentations table
# ---------------------------------------------------------------------------------------


def load_stimulus_tables(h5file: h5py.File) -> StimulusTables:
    """Presentations with invalid ones masked (detailed parameters kept) and the conditions table."""
    presentations = read_stimulus_presentations(h5file)
    conditions = stimulus_conditions(presentations)
    return StimulusTables(mask_invalid_presentations(presentations, invalid_times(h5file)), conditions)


def read_stimulus_presentations(h5file: h5py.File) -> pd.DataFrame:
    """Every ``*_presentations`` table, stacked, sorted by start time and shaped as the AllenSDK does.

    Index ``stimulus_presentation_id`` (0..n-1 in start-time order); ``start_time``,
    ``stop_time`` and ``duration`` in seconds; parameters as object columns where ``'null'``
    marks a parameter that does not apply; ``stimulus_condition_id`` numbers the distinct
    parameter combinations in order of first appearance. Invalid presentations are not yet
    masked (see :func:`mask_invalid_presentations`); detailed parameters are kept.
    """
    parts = read_presentation_columns(h5file)
    if not parts:
        raise MissingDataError(
            f"{h5file.filename}: no stimulus presentation tables (/intervals/*_presentations) in this "
            "file; it holds no stimulus information."
        )
    parts = [_replace_text(part, "N/A", "") for part in parts]
    columns = concat_columns(parts)
    if "start_time" not in columns or "stop_time" not in columns:
        raise NWBFormatError(
            f"{h5file.filename}: the presentation tables {presentation_table_names(h5file)} lack "
            "start_time or stop_time; the file is not the NWB layout ecephys reads.",
            path=h5file.filename,
        )
    n_rows = len(columns["start_time"])
    columns = {name: _coerce_binary_float(name, values) for name, values in columns.items()}
    order = np.argsort(columns["start_time"], kind="stable")
    columns = {name: values[order] for name, values in columns.items()}
    for name in _INT_COLUMNS:
        if name in columns and columns[name].dtype.kind in "iuf":
            values = columns[name]
            columns[name] = np.where(np.isnan(values), _INT_NULL, values).astype(np.int64)
    columns = _front_columns(columns)
    if "color" in columns:
        _split_color(columns, n_rows)
    columns.pop("stimulus_index", None)
    columns = _collapse_capitalised_columns(columns)
    names = columns.get("stimulus_name")
    if names is not None:
        columns["stimulus_name"] = _standardise_stimulus_names(names, h5file.filename)
    columns = {COLUMN_RENAMES.get(name, name): values for name, values in columns.items()}
    columns = _replace_text(columns, "", NULL)
    columns = {name: _fill_null(values) for name, values in columns.items()}
    columns["duration"] = columns["stop_time"] - columns["start_time"]
    parameters = [
        v for k, v in columns.items() if k not in ("start_time", "stop_time", "duration", "stimulus_block")
    ]
    columns["stimulus_condition_id"] = _first_seen_ids(parameters, n_rows)
    index = pd.RangeIndex(n_rows, name="stimulus_presentation_id")
    return _frame(columns, index)


def _frame(columns: Columns, index: pd.Index) -> pd.DataFrame:
    """A DataFrame that keeps object columns object (pandas 3 would make text columns ``str``)."""
    return pd.DataFrame(
        {
            name: pd.Series(values, index=index, dtype=values.dtype, copy=False)
            for name, values in columns.items()
        },
        index=index,
    )


def _replace_text(columns: Columns, old: str, new: str) -> Columns:
    """Replace the exact text ``old`` by ``new`` in every object column."""
    out = {}
    for name, values in columns.items():
        if values.dtype == object:
            hits = values == old
            if hits.any():
                values = values.copy()
                values[hits] = new
        out[name] = values
    return out


def _coerce_binary_float(name: str, values: np.ndarray) -> np.ndarray:
    """A float column holding only 0, 1 and NaN becomes booleans with NaN, as the AllenSDK's ``boolean``."""
    if values.dtype.kind != "f" or name.endswith("_index"):
        return values
    missing = np.isnan(values)
    present = values[~missing]
    if not np.all((present == 0) | (present == 1)):
        return values
    out = np.full(len(values), np.nan, dtype=object)
    flags = np.empty(len(present), dtype=object)
    flags[:] = (present == 1).tolist()  # Python bools, as pandas' boolean → object gives
    out[~missing] = flags
    return out


def _front_columns(columns: Columns) -> Columns:
    """The AllenSDK's column order: its listed columns first, then the rest in file order."""
    front = [name for name in _FRONT_COLUMNS if name in columns]
    rest = [name for name in columns if name not in front]
    return {name: columns[name] for name in front + rest}


def _split_color(columns: Columns, n_rows: int) -> None:
    """Move ``[r, g, b]`` colours to ``color_triplet``; evaluate the other colour strings to numbers."""
    color = columns["color"].astype(object)
    color[pd.isna(color)] = ""
    triplet = columns["color_triplet"].astype(object) if "color_triplet" in columns else None
    if triplet is None:
        triplet = np.full(n_rows, "", dtype=object)
    codes, uniques = pd.factorize(color, use_na_sentinel=False)
    is_triplet = np.array([isinstance(u, str) and _COLOR_TRIPLET.match(u) is not None for u in uniques], bool)
    evaluated = np.empty(len(uniques), dtype=object)
    evaluated[:] = [_literal(u) for u in uniques]
    row_is_triplet = is_triplet[codes]
    triplet[row_is_triplet] = color[row_is_triplet]
    color = evaluated[codes]
    color[row_is_triplet] = ""
    columns["color"] = color
    columns["color_triplet"] = triplet


def _literal(value: object) -> object:
    """A colour string evaluated as a Python literal ('-1.0' → -1.0); '' and non-text stay as they are."""
    if not isinstance(value, str) or value == "":
        return value
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def _collapse_capitalised_columns(columns: Columns) -> Columns:
    """Merge a column into its lower-case twin (``Color`` into ``color``) where they never overlap."""
    names = set(columns)
    merged: list[str] = []
    for name in list(columns):
        for twin in (name.upper(), name.capitalize()):
            if twin not in names or twin == name:
                continue
            mine, theirs = ~pd.isna(columns[name]), ~pd.isna(columns[twin])
            if (mine & theirs).any():
                continue
            take = ~mine & theirs
            if take.any():
                target = columns[name]
                if target.dtype != columns[twin].dtype:
                    target = target.astype(object)
                target = target.copy()
                target[take] = columns[twin][take]
                columns[name] = target
            merged.append(twin)
            break
    return {name: values for name, values in columns.items() if name not in merged}


def _standardise_stimulus_names(names: np.ndarray, filename: object) -> np.ndarray:
    """Apply the AllenSDK's stimulus renames (movie numerals to words, legacy names, blank → spontaneous)."""
    codes, uniques = pd.factorize(names.astype(object), use_na_sentinel=False)
    renamed = [_movie_words(u) for u in uniques]
    if any(isinstance(u, str) and _SHUFFLED_MOVIE.search(u) for u in renamed):
        numbers = {m["number"] for u in renamed if isinstance(u, str) and (m := _MOVIE.search(u))}
        if len(numbers) != 1:
            raise NWBFormatError(
                f"{filename}: a shuffled natural movie is presented but the movie number is ambiguous "
                f"(candidates {sorted(numbers)}); the stimulus names cannot be standardised.",
                path=str(filename),
            )
        number = numbers.pop()
        renamed = [
            f"natural_movie_{number}_shuffled" if isinstance(u, str) and _SHUFFLED_MOVIE.match(u) else u
            for u in renamed
        ]
    mapped = np.empty(len(renamed), dtype=object)
    mapped[:] = ["spontaneous" if _is_missing(u) else STIMULUS_RENAMES.get(u, u) for u in renamed]
    return mapped[codes]


def _movie_words(name: object) -> object:
    """``natural_movie_1`` → ``natural_movie_one`` (digit runs without a word name are kept)."""
    if not isinstance(name, str) or not _MOVIE.search(name):
        return name
    return _NUMERAL.sub(lambda m: _DIGIT_NAMES.get(m["number"], m["number"]), name)


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _fill_null(values: np.ndarray) -> np.ndarray:
    """Replace NaN/None by ``'null'``; a column that had any becomes object, as pandas' fillna does."""
    if values.dtype.kind not in "fO":
        return values
    missing = pd.isna(values)
    if not missing.any():
        return values
    out = values.astype(object)
    out[missing] = NULL
    return out


def _first_seen_ids(columns: list[np.ndarray], n_rows: int) -> np.ndarray:
    """Number the distinct rows of ``columns`` 0, 1, ... in order of first appearance (int64)."""
    ids = np.zeros(n_rows, dtype=np.int64)
    for values in columns:
        codes, uniques = pd.factorize(values, use_na_sentinel=False)
        ids, _ = pd.factorize(ids * max(len(uniques), 1) + codes)
    return ids.astype(np.int64)


def stimulus_conditions(presentations: pd.DataFrame) -> pd.DataFrame:
    """One row per ``stimulus_condition_id``: the parameter values (detailed ones included) it stands for.

    Pass the table from :func:`read_stimulus_presentations` (before masking), as the
    AllenSDK builds its conditions before it masks invalid presentations.
    """
    parameters = [c for c in presentations.columns if c not in NON_STIMULUS_PARAMETERS]
    ids = presentations["stimulus_condition_id"].to_numpy()
    keep = ~pd.isna(ids)
    unique_ids, first = np.unique(ids[keep].astype(np.int64), return_index=True)
    rows = np.flatnonzero(keep)[first]
    index = pd.Index(unique_ids, name="stimulus_condition_id", dtype=np.int64)
    table = _frame({c: presentations[c].to_numpy()[rows] for c in parameters}, index)
    return object_text_columns(table.infer_objects())


def mask_invalid_presentations(
    presentations: pd.DataFrame, invalid: pd.DataFrame, tags: Iterable[str] = ("stimulus",)
) -> pd.DataFrame:
    """Presentations that touch an invalid interval tagged ``stimulus`` become ``invalid_presentation``.

    Their ``start_time`` and ``stop_time`` stay; every other column becomes NaN (real NaN,
    not ``'null'``), so integer columns such as ``stimulus_condition_id`` turn float64 when
    any row is masked. Intervals are closed: touching counts. Returns a new table.
    """
    invalid = filter_invalid_times_by_tags(invalid, tags)
    start = presentations["start_time"].to_numpy()
    stop = presentations["stop_time"].to_numpy()
    masked = np.zeros(len(presentations), dtype=bool)
    for a, b in zip(invalid["start_time"].to_numpy(), invalid["stop_time"].to_numpy(), strict=True):
        masked |= (np.maximum(start, a) <= np.minimum(stop, b)) & ~np.isnan(start)
    out = presentations.copy()
    if not masked.any():
        return out
    for name in out.columns:
        if name in ("start_time", "stop_time"):
            continue
        values = out[name].to_numpy()
        if values.dtype.kind != "f":
            values = values.astype(np.float64 if values.dtype.kind in "iu" else object)
        else:
            values = values.copy()
        values[masked] = np.nan
        if name == "stimulus_name":
            values[masked] = INVALID_PRESENTATION
        out[name] = pd.Series(values, index=out.index, dtype=values.dtype)
    return out


# ---------------------------------------------------------------------------------------
# Views of the presentations table
# ---------------------------------------------------------------------------------------


def remove_detailed_parameters(presentations: pd.DataFrame) -> pd.DataFrame:
    """The table without the PsychoPy settings (``mask``, ``opacity``, ``units``, ``color_triplet``, ...)."""
    return presentations.drop(columns=list(DETAILED_STIMULUS_PARAMETERS), errors="ignore")


def remove_unused_parameters(presentations: pd.DataFrame) -> pd.DataFrame:
    """The table without columns that are all NaN, all ``''`` or all ``'null'`` (all columns if empty)."""
    unused = []
    for name in presentations.columns:
        values = presentations[name].to_numpy()
        if pd.isna(values).all() or (
            values.dtype == object and ((values == "").all() or (values == NULL).all())
        ):
            unused.append(name)
    return presentations.drop(columns=unused)


def stimulus_names(presentations: pd.DataFrame) -> list[str]:
    """The distinct stimulus names in order of first presentation (``invalid_presentation`` included)."""
    return pd.unique(presentations["stimulus_name"].to_numpy()).tolist()


def _as_collection(value: object) -> Collection:
    """A scalar (or a string) as a one-item list; collections as they are."""
    if isinstance(value, str) or not isinstance(value, Collection):
        return [value]
    return value


def get_stimulus_table(
    presentations: pd.DataFrame,
    stimulus_names: str | Iterable[str] | None = None,
    include_detailed_parameters: bool = False,
    include_unused_parameters: bool = False,
) -> pd.DataFrame:
    """Presentations of the named stimuli (all by default), without parameters they never use.

    ``presentations`` is the full table (detailed parameters kept), e.g. from
    :func:`load_stimulus_tables`. Times in seconds.
    """
    names = (
        pd.unique(presentations["stimulus_name"].to_numpy()).tolist()
        if stimulus_names is None
        else _as_collection(stimulus_names)
    )
    table = presentations[presentations["stimulus_name"].isin(names)]
    if not include_detailed_parameters:
        table = remove_detailed_parameters(table)
    if not include_unused_parameters:
        table = remove_unused_parameters(table)
    return table


def get_stimulus_epochs(
    presentations: pd.DataFrame, duration_thresholds: Mapping[str, float] | None = None
) -> pd.DataFrame:
    """Runs of consecutive presentations with the same ``stimulus_block``, one row per run.

    Columns ``start_time``, ``stop_time``, ``duration`` (seconds), ``stimulus_name`` and
    ``stimulus_block``; epochs of a stimulus in ``duration_thresholds`` shorter than its
    threshold (seconds) are dropped, keeping the index labels of the rest.

    Differs from the AllenSDK on purpose: the default thresholds are
    ``{"spontaneous": 90.0}``. The AllenSDK's default ``{"spontaneous_activity": 90.0}``
    names a stimulus that the files never use, so it drops nothing; pass that (or ``{}``)
    to get the AllenSDK's answer.
    """
    thresholds = DEFAULT_EPOCH_THRESHOLDS if duration_thresholds is None else duration_thresholds
    blocks = presentations["stimulus_block"].to_numpy()
    start = presentations["start_time"].to_numpy()
    stop = presentations["stop_time"].to_numpy()
    names = presentations["stimulus_name"].to_numpy()
    if len(blocks):
        codes, _ = pd.factorize(blocks, use_na_sentinel=False)
        firsts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
        lasts = np.r_[firsts[1:], len(blocks)] - 1
    else:
        firsts = lasts = np.zeros(0, dtype=np.int64)
    epochs = pd.DataFrame(
        {
            "start_time": pd.Series(start[firsts], dtype=np.float64),
            "stop_time": pd.Series(stop[lasts], dtype=np.float64),
            "stimulus_name": pd.Series(names[firsts], dtype=object),
            "stimulus_block": pd.Series(blocks[firsts], dtype=blocks.dtype),
        }
    )
    epochs = object_text_columns(epochs.infer_objects())  # dtypes are settled before filtering
    epochs["duration"] = epochs["stop_time"] - epochs["start_time"]
    for name, threshold in thresholds.items():
        epochs = epochs[(epochs["stimulus_name"] != name) | (epochs["duration"] >= threshold)]
    return epochs.loc[:, ["start_time", "stop_time", "duration", "stimulus_name", "stimulus_block"]]


def get_stimulus_parameter_values(
    presentations: pd.DataFrame,
    stimulus_presentation_ids: object = None,
    drop_nulls: bool = True,
) -> dict[str, np.ndarray]:
    """Each used stimulus parameter's distinct values, in order of first appearance.

    Values are object arrays mixing floats and strings as stored; masked
    (``invalid_presentation``) rows contribute NaN. With ``drop_nulls=False`` a parameter
    that is sometimes ``'null'`` lists ``'null'`` last. Detailed parameters are left out.
    """
    table = remove_detailed_parameters(presentations)
    if stimulus_presentation_ids is not None:
        table = table.loc[_as_collection(stimulus_presentation_ids)]
    table = table.drop(columns=[*NON_STIMULUS_PARAMETERS, "stimulus_name"], errors="ignore")
    table = remove_unused_parameters(table)
    values: dict[str, np.ndarray] = {}
    for name in table.columns:
        uniques = pd.unique(table[name].to_numpy())
        if uniques.dtype != object:
            values[name] = np.asarray(uniques)
            continue
        is_null = uniques == NULL
        kept = np.asarray(uniques[~is_null])
        if not drop_nulls and is_null.any():
            kept = np.concatenate([kept, np.array([NULL], dtype=object)])
        values[name] = kept
    return values


def get_parameter_values_for_stimulus(
    presentations: pd.DataFrame, stimulus_name: str, drop_nulls: bool = True
) -> dict[str, np.ndarray]:
    """:func:`get_stimulus_parameter_values` restricted to the presentations of one stimulus."""
    ids = presentations.index[presentations["stimulus_name"].to_numpy() == stimulus_name]
    return get_stimulus_parameter_values(presentations, ids, drop_nulls=drop_nulls)


def inter_presentation_intervals(presentations: pd.DataFrame) -> pd.DataFrame:
    """Seconds from each presentation's stop to the next one's start, by (from, to) presentation id."""
    ids = presentations.index.to_numpy()
    start = presentations["start_time"].to_numpy()
    stop = presentations["stop_time"].to_numpy()
    index = pd.MultiIndex.from_arrays(
        [ids[:-1], ids[1:]], names=["from_presentation_id", "to_presentation_id"]
    )
    return pd.DataFrame({"interval": start[1:] - stop[:-1]}, index=index)


def get_inter_presentation_intervals_for_stimulus(
    presentations: pd.DataFrame,
    stimulus_names: str | Iterable[str],
    intervals: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Inter-presentation intervals (seconds) between two presentations of the named stimuli.

    ``intervals`` is :func:`inter_presentation_intervals` of ``presentations`` (computed when
    not given).
    """
    if intervals is None:
        intervals = inter_presentation_intervals(presentations)
    wanted = presentations.index[presentations["stimulus_name"].isin(_as_collection(stimulus_names))]
    keep = intervals.index.isin(wanted, level="from_presentation_id") & intervals.index.isin(
        wanted, level="to_presentation_id"
    )
    return intervals[keep]


# ---------------------------------------------------------------------------------------
# Invalid times
# ---------------------------------------------------------------------------------------


def invalid_times(h5file: h5py.File) -> pd.DataFrame:
    """``/intervals/invalid_times``: ``start_time``, ``stop_time`` (s), ``tags`` ([scope, id, label]).

    A file without the table gives an empty table with these columns (the AllenSDK gives
    one with no columns).
    """
    group = h5file.get("intervals/invalid_times")
    if group is None:
        return _empty_table((("start_time", np.float64), ("stop_time", np.float64), ("tags", object)))
    table = interval_table(h5file, "intervals/invalid_times")
    scalars = read_interval_columns(table, skip=("timeseries",))
    columns: Columns = {}
    for name in column_names(table):
        if name in scalars:
            columns[name] = scalars[name]
        elif name != "timeseries" and name in table and is_ragged(table, name):
            columns[name] = read_ragged_text(table, name)
    return _frame(columns, pd.Index(read_ids(table), name="id"))


def _empty_table(columns: Iterable[tuple[str, type]]) -> pd.DataFrame:
    """A table with no rows but these columns and dtypes, indexed by an int64 ``id``."""
    index = pd.Index([], dtype=np.int64, name="id")
    return pd.DataFrame(
        {name: pd.Series([], dtype=dtype, index=index) for name, dtype in columns}, index=index
    )


def filter_invalid_times_by_tags(invalid: pd.DataFrame, tags: Iterable[str]) -> pd.DataFrame:
    """The invalid intervals carrying any of ``tags`` (e.g. ``'stimulus'``, ``'probeC'``)."""
    if invalid.empty or "tags" not in invalid.columns:
        return invalid.copy()
    wanted = list(tags)
    rows = invalid["tags"].to_numpy()
    lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    flat = np.concatenate([np.asarray(r, dtype=object) for r in rows]) if len(rows) else np.zeros(0, object)
    hit = np.isin(flat, np.asarray(wanted, dtype=object)) if len(flat) else np.zeros(0, bool)
    owner = np.repeat(np.arange(len(rows)), lengths)
    keep = np.bincount(owner[hit], minlength=len(rows)) > 0
    return invalid[keep].copy()


# ---------------------------------------------------------------------------------------
# Behaviour and optotagging
# ---------------------------------------------------------------------------------------


def _dataset(h5file: h5py.File, path: str, what: str) -> np.ndarray:
    dataset = h5file.get(path)
    if dataset is None:
        raise MissingDataError(
            f"{h5file.filename}: no /{path}, so this session file has no {what}; use a session that "
            "recorded it."
        )
    return dataset[()]


def running_speed(h5file: h5py.File, include_rotation: bool = False) -> pd.DataFrame:
    """Running speed per wheel sample: ``start_time``, ``end_time`` (s) and ``velocity`` (cm/s).

    With ``include_rotation``, ``net_rotation`` (radians per sample) is added.
    """
    what = "running data"
    table = {
        "start_time": _dataset(h5file, "processing/running/running_speed/timestamps", what),
        "end_time": _dataset(h5file, "processing/running/running_speed_end_times/timestamps", what),
        "velocity": _dataset(h5file, "processing/running/running_speed/data", what),
    }
    if include_rotation:
        table["net_rotation"] = _dataset(h5file, "processing/running/running_wheel_rotation/data", what)
    return pd.DataFrame(table)


OPTOTAGGING_TABLE = "processing/optotagging/optogenetic_stimulation"
_OPTOTAGGING_COLUMNS = (  # the real tables' columns, in their order, and dtypes
    ("start_time", np.float64),
    ("condition", object),
    ("level", np.float64),
    ("stop_time", np.float64),
    ("stimulus_name", object),
    ("duration", np.float64),
)


def optogenetic_stimulation_epochs(h5file: h5py.File) -> pd.DataFrame:
    """Laser stimulation epochs: ``start_time``, ``stop_time``, ``duration`` (s), ``level`` (V), ...

    Also ``condition`` (a description of the light pattern) and ``stimulus_name``, indexed by
    ``id``. A session without optotagging gives an empty table with these columns and dtypes
    (the AllenSDK raises ``KeyError``).
    """
    if h5file.get(OPTOTAGGING_TABLE) is None:
        return _empty_table(_OPTOTAGGING_COLUMNS)
    table = read_interval_table(interval_table(h5file, OPTOTAGGING_TABLE))
    return table.rename(columns={"name": "stimulus_name"})


_ELLIPSES = (("corneal_reflection", "cr"), ("pupil", "pupil"), ("eye", "eye"))


def _absent_modules(h5file: h5py.File, modules: Iterable[str], what: str) -> bool:
    """Whether any of the processing ``modules`` is missing; if so, say so at INFO level."""
    missing = [f"/processing/{name}" for name in modules if h5file.get(f"processing/{name}") is None]
    if missing:
        log.info("%s: no %s (no %s in the file); returning None", h5file.filename, what, ", ".join(missing))
    return bool(missing)


def pupil_data(h5file: h5py.File) -> pd.DataFrame | None:
    """Eye-tracking ellipse fits (corneal reflection, pupil, eye) indexed by ``Time (s)``.

    Centres, widths and heights in pixels of the eye-tracking video (widths and heights are
    full axes: the file's half-axes doubled); ``phi`` in radians. None (logged at INFO) when
    the session has no eye tracking, as in the AllenSDK.
    """
    if _absent_modules(h5file, ("eye_tracking", "raw_gaze_mapping"), "eye tracking data"):
        return None
    what = "eye tracking"
    data: dict[str, np.ndarray] = {}
    for prefix, stored in _ELLIPSES:
        base = f"processing/eye_tracking/{stored}_ellipse_fits"
        data[f"{prefix}_center_x"] = _dataset(h5file, f"{base}/center_x", what)
        data[f"{prefix}_center_y"] = _dataset(h5file, f"{base}/center_y", what)
        data[f"{prefix}_height"] = 2 * _dataset(h5file, f"{base}/height", what)
        data[f"{prefix}_width"] = 2 * _dataset(h5file, f"{base}/width", what)
        data[f"{prefix}_phi"] = _dataset(h5file, f"{base}/phi", what)
    times = _dataset(h5file, "processing/raw_gaze_mapping/eye_area/timestamps", what)
    return pd.DataFrame(data, index=pd.Index(times, name="Time (s)"))


def screen_gaze_data(h5file: h5py.File, include_filtered_data: bool = False) -> pd.DataFrame | None:
    """Gaze on the screen indexed by ``Time (s)``: ``raw_*`` areas and screen positions.

    ``*_eye_area`` and ``*_pupil_area`` in pixels², ``*_screen_coordinates_{x,y}_cm`` in cm on
    the monitor, ``*_screen_coordinates_spherical_{x,y}_deg`` in degrees. The file stores
    coordinates as [y, x]; the columns name them. ``filtered_*`` columns (NaN where the fit
    was rejected) are added with ``include_filtered_data``. None (logged at INFO) when the
    session has no gaze mapping (raw or filtered), as in the AllenSDK.
    """
    if _absent_modules(h5file, ("raw_gaze_mapping", "filtered_gaze_mapping"), "eye tracking data"):
        return None
    what = "eye tracking"
    data: dict[str, np.ndarray] = {}
    kinds = ("raw", "filtered") if include_filtered_data else ("raw",)
    for kind in kinds:
        base = f"processing/{kind}_gaze_mapping"
        coordinates = _dataset(h5file, f"{base}/screen_coordinates/data", what)
        spherical = _dataset(h5file, f"{base}/screen_coordinates_spherical/data", what)
        data[f"{kind}_eye_area"] = _dataset(h5file, f"{base}/eye_area/data", what)
        data[f"{kind}_pupil_area"] = _dataset(h5file, f"{base}/pupil_area/data", what)
        data[f"{kind}_screen_coordinates_x_cm"] = coordinates[:, 1]
        data[f"{kind}_screen_coordinates_y_cm"] = coordinates[:, 0]
        data[f"{kind}_screen_coordinates_spherical_x_deg"] = spherical[:, 1]
        data[f"{kind}_screen_coordinates_spherical_y_deg"] = spherical[:, 0]
    times = _dataset(h5file, "processing/raw_gaze_mapping/eye_area/timestamps", what)
    return pd.DataFrame(data, index=pd.Index(times, name="Time (s)"))
