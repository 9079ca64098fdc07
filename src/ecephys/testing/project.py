"""Synthetic project folders: several ``make_session`` sessions plus the four project tables.

``make_project`` writes sessions with :func:`~ecephys.testing.make_session` and then
``sessions.csv``, ``probes.csv``, ``channels.csv`` and ``units.csv`` as the Allen cache folder
holds them (the warehouse's columns, in the real files' order), so that
:class:`~ecephys.project.EcephysProjectCache` reads the folder as it is and
:class:`~ecephys.testing.warehouse.WarehouseServer` serves it to ecephys or the AllenSDK.

``TUTORIAL_SESSIONS`` / ``make_tutorial_project`` make the folder the offline demo and the
seed-tutorial tests use: three sessions of the two session types, three genotypes, six probes
each (probeD's track ends in VISl), so that the AllenSDK tutorial's query "male Sst mice shown
brain_observatory_1.1 with VISl units" has an answer.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import pandas as pd

from ecephys.errors import EcephysWarning
from ecephys.nwb.allen import AllenSessionFile
from ecephys.session import open_session
from ecephys.testing.synthetic import SessionFiles, make_session

__all__ = [
    "PROJECT_SESSIONS",
    "TUTORIAL_SESSIONS",
    "ProjectSession",
    "make_project",
    "make_tutorial_project",
]

SESSION_TYPES = ("brain_observatory_1.1", "functional_connectivity")


@dataclass(frozen=True)
class ProjectSession:
    """One session of a synthetic project.

    ``session_type`` is the stimulus set ``make_session`` writes (and ``sessions.csv`` lists).
    ``sex`` and ``genotype`` replace what ``make_session`` drew for the mouse, in the session
    file and in ``sessions.csv``; None keeps the drawn value.
    """

    session_id: int
    seed: int = 0
    session_type: str = "brain_observatory_1.1"
    sex: str | None = None
    genotype: str | None = None
    #: Structures the session must have units in (units passing the default quality filters):
    #: ``make_project`` tries ``seed``, ``seed + 1``, ... until a session has them.
    units_in: tuple[str, ...] = ()
    #: ``make_session`` arguments of this session only, over ``make_project``'s.
    options: Mapping[str, Any] = field(default_factory=dict)


#: The small default project: ids a million apart (``make_session``'s id ranges), both session
#: types, the first mouse wild type.
PROJECT_SESSIONS = (
    ProjectSession(990000001, seed=0, session_type="brain_observatory_1.1", genotype="wt/wt"),
    ProjectSession(991000001, seed=1, session_type="functional_connectivity"),
    ProjectSession(992000001, seed=2, session_type="brain_observatory_1.1"),
)

SST = "Sst-IRES-Cre/wt;Ai32(RCL-ChR2(H134R)_EYFP)/wt"
VIP = "Vip-IRES-Cre/wt;Ai32(RCL-ChR2(H134R)_EYFP)/wt"

#: The tutorial project: a male Sst mouse shown brain_observatory_1.1 with units in VISl (the
#: one session the tutorial's query finds), a female Vip mouse shown functional_connectivity
#: and a male wild type with five probes.
TUTORIAL_SESSIONS = (
    ProjectSession(
        970000001, seed=11, session_type="brain_observatory_1.1", sex="M", genotype=SST, units_in=("VISl",)
    ),
    ProjectSession(
        971000001, seed=12, session_type="functional_connectivity", sex="F", genotype=VIP,
        options={"units_per_probe": 35},
    ),
    ProjectSession(
        972000001, seed=13, session_type="brain_observatory_1.1", sex="M", genotype="wt/wt",
        options={"n_probes": 5, "units_per_probe": 60},
    ),
)  # fmt: skip

#: ``make_session`` arguments of the small default project.
SMALL_SESSION = dict(n_probes=2, units_per_probe=4, duration=30.0, lfp_duration=2.0, channels_per_probe=32)

#: ``make_session`` arguments of the tutorial project: six probes (probeA…F, VISam … VISal),
#: 50 units each, 10 minutes; 10 s of LFP on 16 channels around the first flashes.
TUTORIAL_SESSION = dict(
    n_probes=6, units_per_probe=50, duration=600.0, lfp_duration=10.0, lfp_channels=16, channels_per_probe=96
)


def make_project(
    folder: str | os.PathLike,
    sessions: Sequence[ProjectSession] = PROJECT_SESSIONS,
    *,
    drop_last_lfp: bool = True,
    **session_kwargs: Any,
) -> Path:
    """Write synthetic sessions and the project tables into ``folder``; return the folder.

    Parameters
    ----------
    folder
        Where ``sessions.csv`` … ``units.csv`` and ``session_<sid>/`` go (created if needed).
    sessions
        The sessions: ids, seeds, session types and mice (default ``PROJECT_SESSIONS``).
    drop_last_lfp
        Give the last session's last probe the real ``probes.csv``'s quirks of a probe without
        LFP: no LFP file, ``has_lfp_data`` False, an empty subsampling factor and a 0.0
        sampling rate.
    **session_kwargs
        Passed to :func:`~ecephys.testing.make_session`, over ``SMALL_SESSION`` (2 probes of
        4 units, 30 s, 32 channels, 2 s of LFP).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    kwargs = {**SMALL_SESSION, **session_kwargs}
    session_rows, probe_rows = [], []
    for number, spec in enumerate(sessions):
        files = _make_session(folder, spec, kwargs)
        for path in (files.session_path, *files.lfp_paths.values()):
            _set_subject(path, sex=spec.sex, genotype=spec.genotype)
        session_rows.append(_session_row(files.session_path, spec, number))
        for pid in files.lfp_paths:
            probe_rows.append(_probe_row(files.session_path, spec.session_id, pid))
        if drop_last_lfp and number == len(sessions) - 1 and files.lfp_paths:
            last = probe_rows[-1]
            files.lfp_paths[last["id"]].unlink()
            last.update(has_lfp_data=False, lfp_temporal_subsampling_factor=None, sampling_rate=0.0)
    pd.DataFrame(session_rows).to_csv(folder / "sessions.csv", index=False)
    pd.DataFrame(probe_rows).to_csv(folder / "probes.csv", index=False)
    ids = [spec.session_id for spec in sessions]
    channels = pd.concat([_channel_rows(folder, sid) for sid in ids], ignore_index=True)
    channels.to_csv(folder / "channels.csv", index=False)
    units = pd.concat([_unit_rows(folder, sid) for sid in ids], ignore_index=True)
    units.to_csv(folder / "units.csv", index=False)
    return folder


def make_tutorial_project(folder: str | os.PathLike) -> Path:
    """The project of the offline demo and the seed-tutorial tests (``TUTORIAL_SESSIONS``).

    Every probe keeps its LFP file. About 25 MB per session; a few seconds to write.
    """
    return make_project(folder, TUTORIAL_SESSIONS, drop_last_lfp=False, **TUTORIAL_SESSION)


# ------------------------------------------------------------------ the sessions

MAX_SEED_TRIES = 50


def _make_session(folder: Path, spec: ProjectSession, kwargs: dict[str, Any]) -> SessionFiles:
    """``make_session`` for ``spec``, trying further seeds until the units are where ``units_in`` says."""
    kwargs = {**kwargs, **spec.options}
    for seed in range(spec.seed, spec.seed + MAX_SEED_TRIES):
        files = make_session(
            folder, session_id=spec.session_id, seed=seed, session_type=spec.session_type, **kwargs
        )
        if not spec.units_in:
            return files
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", EcephysWarning)
            with open_session(files.session_path) as session:
                counts = session.structurewise_unit_counts
        if all(counts.get(structure, 0) > 0 for structure in spec.units_in):
            return files
    raise ValueError(
        f"session {spec.session_id}: none of seeds {spec.seed} to {spec.seed + MAX_SEED_TRIES - 1} gives "
        f"units in {', '.join(spec.units_in)} with {kwargs}; ask for more units or probes"
    )


# ------------------------------------------------------------------ the tables


def _session_file(folder: Path, sid: int) -> Path:
    return folder / f"session_{sid}" / f"session_{sid}.nwb"


def _set_subject(path: Path, *, sex: str | None, genotype: str | None) -> None:
    """Replace the mouse's sex and genotype (and strain, specimen name) in a file's subject group."""
    if sex is None and genotype is None:
        return
    with h5py.File(path, "r+") as nwb:
        subject = nwb.get("general/subject")
        if subject is None:  # the 2.16.2 writer's LFP files have none
            return
        values = {"sex": sex}
        if genotype is not None:
            strain = "C57BL6J" if genotype.startswith("wt/") else genotype.split("/", 1)[0]
            values.update(genotype=genotype, strain=strain)
            donor = str(subject.attrs.get("specimen_name", "")).rsplit("-", 1)[-1]
            subject.attrs["specimen_name"] = (
                f"{strain}-{donor}" if strain == "C57BL6J" else f"{strain};Ai32-{donor}"
            )
        for name, value in values.items():
            if value is None:
                continue
            attrs = dict(subject[name].attrs)
            del subject[name]
            dataset = subject.create_dataset(name, data=value, dtype=h5py.string_dtype("utf-8"))
            dataset.attrs.update(attrs)


def _channel_rows(folder: Path, sid: int) -> pd.DataFrame:
    """channels.csv rows (the warehouse's tabular columns) from a session file's electrodes."""
    electrodes = AllenSessionFile(_session_file(folder, sid)).electrodes
    acronyms = electrodes["location"].where(~electrodes["location"].isin(["", "None"]))
    structure_ids = acronyms.map(lambda a: float(sum(map(ord, a)) if isinstance(a, str) else "nan"))
    return pd.DataFrame(
        {
            "id": electrodes.index,
            "ecephys_probe_id": electrodes["probe_id"].to_numpy(),
            "local_index": electrodes["probe_channel_number"].to_numpy(),
            "probe_horizontal_position": electrodes["probe_horizontal_position"].to_numpy(),
            "probe_vertical_position": electrodes["probe_vertical_position"].to_numpy(),
            "anterior_posterior_ccf_coordinate": electrodes["x"].to_numpy(),
            "dorsal_ventral_ccf_coordinate": electrodes["y"].to_numpy(),
            "left_right_ccf_coordinate": electrodes["z"].to_numpy(),
            "ecephys_structure_id": structure_ids.to_numpy(dtype=float),
            "ecephys_structure_acronym": acronyms.to_numpy(dtype=object),
        }
    )


def _unit_rows(folder: Path, sid: int) -> pd.DataFrame:
    """units.csv rows (the warehouse's columns) from a session file's units table."""
    units = AllenSessionFile(_session_file(folder, sid)).units
    renamed = units.rename(
        columns={
            "peak_channel_id": "ecephys_channel_id",
            "waveform_duration": "duration",
            "waveform_halfwidth": "halfwidth",
        }
    )
    columns = [
        "ecephys_channel_id", "quality", "snr", "firing_rate", "isi_violations", "presence_ratio",
        "amplitude_cutoff", "isolation_distance", "l_ratio", "d_prime", "nn_hit_rate", "nn_miss_rate",
        "silhouette_score", "max_drift", "cumulative_drift", "duration", "halfwidth", "PT_ratio",
        "repolarization_slope", "recovery_slope", "amplitude", "spread", "velocity_above", "velocity_below",
    ]  # fmt: skip
    table = renamed.reindex(columns=columns).reset_index()
    table.insert(16, "epoch_name_quality_metrics", "complete_session")
    table.insert(17, "epoch_name_waveform_metrics", "complete_session")
    return table


def _session_row(path: Path, spec: ProjectSession, number: int) -> dict[str, object]:
    """A sessions.csv row (real column order) from a session file's subject metadata."""
    if spec.session_type not in SESSION_TYPES:
        raise ValueError(f"session_type={spec.session_type!r}: expected one of {SESSION_TYPES}")
    with h5py.File(path, "r") as nwb:
        subject = {k: nwb["general/subject"][k][()].decode() for k in ("age", "sex", "genotype")}
    return {
        "id": spec.session_id,
        "date_of_acquisition": "2019-01-19T08:54:18Z",
        "isi_experiment_id": 705968051 + number,
        "published_at": "2019-10-03T00:00:00Z",
        "specimen_id": 699733581 + number,
        "session_type": spec.session_type,
        "age_in_days": float(subject["age"].strip("PD")),
        "sex": subject["sex"],
        "genotype": subject["genotype"],
        "has_nwb": True,
    }


def _probe_row(path: Path, sid: int, pid: int) -> dict[str, object]:
    """A probes.csv row (real column order) from the session file's probe group."""
    with h5py.File(path, "r") as nwb:
        group = next(
            g
            for name, g in nwb["general/extracellular_ephys"].items()
            if g.attrs.get("probe_id", None) == pid
        )
        name = group.name.rsplit("/", 1)[-1]
        lfp_rate = float(group.attrs["lfp_sampling_rate"])
    return {
        "id": pid,
        "air_channel_index": 384,
        "ecephys_session_id": sid,
        "lfp_sampling_rate": lfp_rate * 2.0,
        "lfp_temporal_subsampling_factor": 2.0,
        "name": name,
        "phase": "3a",
        "sampling_rate": 29999.9674184945,
        "surface_channel_index": 336,
        "has_lfp_data": True,
    }
