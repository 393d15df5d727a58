"""Manifests for existing data sets in their official layouts, and the registry the CLI exposes.

One module per data set: UCF101, HMDB51 and a generic CSV (their functions return the Manifest;
a listed video that is missing is an error there), and the paper's data sets Kinetics-400,
THUMOS14, UCF-Crime, VISPR, PA-HMDB51 and NTU RGB+D (their functions return an
:class:`ImportResult`: these data sets are never complete on disk, so missing videos are skipped,
counted and reported in one summary line, logged at INFO). Every importer reads the data set's own
annotation files, probes each video's fps and frame count with PyAV (a header read; a video that
cannot be probed is kept with unknown values so that extraction records it as failed), writes
``manifest.parquet`` with paths relative to it (by default at the data set root) and returns it
validated. A broken annotation line raises ManifestError naming the file and line.

``IMPORTERS`` maps each layout name to an :class:`ImporterSpec`: the function, a one-line help,
what SOURCE is, and the extra options, so a command line can offer
``manifest import LAYOUT SOURCE --output manifest.parquet [--option value ...]`` generically::

    spec = IMPORTERS["thumos14"]
    result = spec.run("/data/thumos14", "/data/thumos14/manifest.parquet", split_names="plain")
    print(result.summary)

See docs/data.md for each data set's expected layout and what is skipped.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.data.importers import generic_csv, hmdb51, ntu_rgbd, pa_hmdb51, ucf101, vispr
from pipeline.data.importers._common import (
    IMAGE_SUFFIXES,
    REASONS,
    SPLIT_NAMING,
    VIDEO_SUFFIXES,
    ImportResult,
)
from pipeline.data.importers.generic_csv import import_csv
from pipeline.data.importers.hmdb51 import HMDB51_CLASSES, import_hmdb51
from pipeline.data.importers.kinetics400 import import_kinetics400
from pipeline.data.importers.ntu_rgbd import import_ntu_rgbd
from pipeline.data.importers.pa_hmdb51 import import_pa_hmdb51
from pipeline.data.importers.thumos14 import import_thumos14
from pipeline.data.importers.ucf101 import import_ucf101
from pipeline.data.importers.ucf_crime import import_ucf_crime
from pipeline.data.importers.vispr import import_vispr
from pipeline.errors import ConfigError

__all__ = [
    "HMDB51_CLASSES",
    "IMAGE_SUFFIXES",
    "IMPORTERS",
    "REASONS",
    "VIDEO_SUFFIXES",
    "ImportResult",
    "ImporterOption",
    "ImporterSpec",
    "import_csv",
    "import_hmdb51",
    "import_kinetics400",
    "import_ntu_rgbd",
    "import_pa_hmdb51",
    "import_thumos14",
    "import_ucf101",
    "import_ucf_crime",
    "import_vispr",
    "run_importer",
]


@dataclass(frozen=True)
class ImporterOption:
    """One extra option of an importer: ``--<name with - for _>`` on a command line."""

    name: str
    """The keyword argument, e.g. ``split_id`` (a CLI spells it ``--split-id``)."""
    type: type
    """``str``, ``int``, ``bool`` (a flag, default False) or ``Path`` (a file or folder)."""
    help: str
    required: bool = False
    default: Any = None
    """The function's default (None: not given)."""
    choices: tuple[str, ...] | None = None
    """The values allowed, for ``str`` options with a closed set."""

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class ImporterSpec:
    """A layout the CLI can import: ``function(source, out_manifest, **options)``."""

    layout: str
    """The LAYOUT argument, e.g. ``thumos14``."""
    function: Callable[..., ImportResult]
    """Called as ``function(source, out_manifest, **options)``; returns an ImportResult."""
    help: str
    """One line for the command's help."""
    source_help: str
    """What SOURCE is for this layout."""
    options: tuple[ImporterOption, ...] = ()

    def option(self, name: str) -> ImporterOption:
        for opt in self.options:
            if opt.name == name:
                return opt
        raise ConfigError(f"{self.layout} has no option {name!r}")

    def run(
        self,
        source: str | os.PathLike[str],
        output: str | os.PathLike[str] | None = None,
        **options: Any,
    ) -> ImportResult:
        """Check ``options`` (unknown, missing required, bad choice: ConfigError), then import.
        Options given as None are left to the function's default."""
        given = {k: v for k, v in options.items() if v is not None}
        for name, value in given.items():
            opt = self.option(name)
            if opt.choices is not None and value not in opt.choices:
                raise ConfigError(
                    f"{self.layout}: {opt.flag} must be one of {', '.join(opt.choices)}, "
                    f"got {value!r}"
                )
        missing = [o.flag for o in self.options if o.required and o.name not in given]
        if missing:
            raise ConfigError(f"{self.layout} needs {', '.join(missing)}")
        return self.function(source, output, **given)


def run_importer(
    layout: str,
    source: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    **options: Any,
) -> ImportResult:
    """``IMPORTERS[layout].run(source, output, **options)``; an unknown layout is a ConfigError."""
    if layout not in IMPORTERS:
        raise ConfigError(f"unknown layout {layout!r}: choose one of {', '.join(IMPORTERS)}")
    return IMPORTERS[layout].run(source, output, **options)


_ALLOW_OUTSIDE = ImporterOption(
    "allow_outside_root",
    bool,
    "Allow video paths outside the manifest's directory (stored absolute)",
    default=False,
)
_SPLIT_NAMES = ImporterOption(
    "split_names",
    str,
    "protocol: the splits the probes read (tad_*, anomaly_*, privacy_*, bias_*); "
    "plain: train/val/test",
    default="protocol",
    choices=SPLIT_NAMING,
)
_SPLIT_ID = ImporterOption("split_id", int, "Official split number (1-3)", default=1)


def _annotations(what: str) -> ImporterOption:
    return ImporterOption(
        "annotations", Path, f"Folder holding the {what} (default: searched under SOURCE)"
    )


IMPORTERS: dict[str, ImporterSpec] = {
    "ucf101": ImporterSpec(
        "ucf101",
        ucf101.run,
        "UCF101: class folders + ucfTrainTestlist (train/test)",
        "the UCF-101 folder (<Class>/v_*.avi)",
        (
            ImporterOption(
                "splits_dir",
                Path,
                "The ucfTrainTestlist folder (classInd.txt, trainlist0N.txt, testlist0N.txt)",
                required=True,
            ),
            _SPLIT_ID,
        ),
    ),
    "hmdb51": ImporterSpec(
        "hmdb51",
        hmdb51.run,
        "HMDB51: class folders + testTrainMulti_7030_splits (train/test)",
        "the HMDB51 folder (<class>/*.avi)",
        (
            ImporterOption(
                "splits_dir",
                Path,
                "The testTrainMulti_7030_splits folder or its parent",
                required=True,
            ),
            _SPLIT_ID,
        ),
    ),
    "csv": ImporterSpec(
        "csv",
        generic_csv.run,
        "A generic CSV: video_id,path,split,action[,attr_*,kind,fps,num_frames,segments,...]",
        "the CSV file (paths in it relative to its folder)",
        (
            ImporterOption("name", str, "Data set name (default: the CSV's folder name)"),
            _ALLOW_OUTSIDE,
        ),
    ),
    "kinetics400": ImporterSpec(
        "kinetics400",
        import_kinetics400,
        "Kinetics-400: annotation CSVs + <youtube_id>_<start>_<end>.mp4 clips (train/val/test)",
        "the Kinetics-400 root (clips anywhere below it)",
        (
            _annotations("train.csv / val.csv / test.csv"),
            ImporterOption(
                "splits", str, "Which CSVs to import, comma-separated", default="train,val,test"
            ),
            _ALLOW_OUTSIDE,
        ),
    ),
    "thumos14": ImporterSpec(
        "thumos14",
        import_thumos14,
        "THUMOS14: <Class>_val/test.txt segments in seconds, untrimmed videos (tad_train/test)",
        "the THUMOS14 root (videos and annotation folders anywhere below it)",
        (
            _annotations("<Class>_val.txt / <Class>_test.txt files"),
            ImporterOption(
                "splits", str, "Which of val,test to import, comma-separated", default="val,test"
            ),
            _SPLIT_NAMES,
            ImporterOption(
                "keep_bad",
                bool,
                "Keep video_test_0000270 and video_test_0001496 (wrong annotations)",
                default=False,
            ),
            _ALLOW_OUTSIDE,
        ),
    ),
    "ucf-crime": ImporterSpec(
        "ucf-crime",
        import_ucf_crime,
        "UCF-Crime: Anomaly_Train.txt + temporal test annotations (anomaly_train/test)",
        "the UCF-Crime root (videos anywhere below it)",
        (
            _annotations("Anomaly_Train.txt and Temporal_Anomaly_Annotation*.txt"),
            _SPLIT_NAMES,
            _ALLOW_OUTSIDE,
        ),
    ),
    "vispr": ImporterSpec(
        "vispr",
        import_vispr,
        "VISPR: images + per-image JSON privacy labels (privacy_train/val/privacy_test)",
        "the VISPR root (images/, annotations/, {split}2017.txt)",
        (
            ImporterOption(
                "attributes",
                str,
                "paper: the protocol's 7 binary attributes; all: the 68 of attributes.tsv",
                default="paper",
                choices=vispr.ATTRIBUTE_SETS,
            ),
            ImporterOption(
                "splits",
                str,
                "Which of train,val,test to import, comma-separated",
                default="train,val,test",
            ),
            _SPLIT_NAMES,
            _ALLOW_OUTSIDE,
        ),
    ),
    "pa-hmdb51": ImporterSpec(
        "pa-hmdb51",
        import_pa_hmdb51,
        "PA-HMDB51: frame-level privacy attributes of HMDB51 videos (privacy_test)",
        "the PA-HMDB51 root (PrivacyAttributes/<action>.json)",
        (
            ImporterOption(
                "videos", Path, "The HMDB51 video folder (default: SOURCE; found by file name)"
            ),
            ImporterOption(
                "labels",
                str,
                "binary: VISPR's attributes, positive where code != 0; codes: PA-HMDB51's codes",
                default="binary",
                choices=pa_hmdb51.LABEL_SETS,
            ),
            ImporterOption(
                "face_reading",
                str,
                "common: a10_face_partial = any visible face; fine: partial faces only",
                default="common",
                choices=pa_hmdb51.FACE_READINGS,
            ),
            _SPLIT_NAMES,
            _ALLOW_OUTSIDE,
        ),
    ),
    "ntu-rgbd": ImporterSpec(
        "ntu-rgbd",
        import_ntu_rgbd,
        "NTU RGB+D: S*C*P*R*A*_rgb.avi + a performer gender map (bias_train/bias_test)",
        "the NTU RGB+D root (nturgb+d_rgb/ anywhere below it)",
        (
            ImporterOption(
                "gender_map",
                Path,
                "Performer genders: JSON {male: [P001, ...], female: [...]} or CSV "
                "filename,label,gender (m/f); without it no gender attribute",
            ),
            ImporterOption(
                "protocol",
                str,
                "Train/test split: xsub (performers), xview (cameras), xset (setups)",
                default="xsub",
                choices=ntu_rgbd.PROTOCOLS,
            ),
            ImporterOption(
                "train_performers",
                str,
                "xsub training performers instead of the standard ones, e.g. P001,P002",
            ),
            ImporterOption(
                "subset",
                str,
                "all, or ntu60 (leave A061-A120 out)",
                default="all",
                choices=ntu_rgbd.SUBSETS,
            ),
            _SPLIT_NAMES,
            _ALLOW_OUTSIDE,
        ),
    ),
}
"""Layout name -> its importer, in the order a help text lists them."""
