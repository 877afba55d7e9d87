"""Readers for the public face data sets the multi-head model is trained and evaluated on.

Each reader takes the data set's root folder in its public layout and returns a ``ReadResult``:
the records it could read, and a count of the entries it skipped and why. A wrong layout (a
missing folder or CSV) raises ``DatasetLayoutError`` with what was expected; a malformed entry
is counted, never fatal.

Label conventions are the project's: gender 0 male, 1 female (``device.types.GENDERS``);
emotion is an index into ``device.types.EMOTIONS`` (Kaggle FER2013 order).
"""

from tools.datasets.aaf import read_aaf
from tools.datasets.common import DatasetLayoutError, FaceRecord, ReadResult, load_gray
from tools.datasets.fer2013csv import read_fer2013_csv
from tools.datasets.ferplus import FERPLUS_VOTES, ferplus_to_emotions, read_ferplus
from tools.datasets.folders import CK_CLASSES, read_ck48, read_fer_folders
from tools.datasets.utkface import RACES, read_utkface

__all__ = ["DatasetLayoutError", "FaceRecord", "ReadResult", "load_gray", "read_aaf",
           "read_fer2013_csv", "FERPLUS_VOTES", "ferplus_to_emotions", "read_ferplus",
           "CK_CLASSES", "read_ck48", "read_fer_folders", "RACES", "read_utkface"]
