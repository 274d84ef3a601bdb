"""Crack data sets on disk: the folder layout, strict readers and writers, and the synthetic set.

See :mod:`crackkit.data.folder` for the layout and :mod:`crackkit.data.synthetic` for the built-in
synthetic data set. Real data sets are imported into that layout by :mod:`crackkit.data.crack500`
(``crackkit data crack500``) and :mod:`crackkit.data.cfd` (``crackkit data cfd``, CrackForest),
which share the resumable, verified downloads of :mod:`crackkit.data.download` and the bounded,
verified archive extraction of :mod:`crackkit.data.archive`.
"""

from crackkit.data.folder import (
    IMAGE_EXTENSIONS,
    MASK_AMBIGUOUS_BAND,
    MASK_NOISE_TOLERANCE,
    SPLITS,
    DatasetError,
    Sample,
    image_size,
    mask_noise_fraction,
    read_image,
    read_mask,
    scan_split,
    split_counts,
    write_sample,
)
from crackkit.data.synthetic import (
    SyntheticSpec,
    ensure_synthetic,
    generate_dataset,
    generate_sample,
)

__all__ = [
    "DatasetError",
    "IMAGE_EXTENSIONS",
    "MASK_AMBIGUOUS_BAND",
    "MASK_NOISE_TOLERANCE",
    "SPLITS",
    "Sample",
    "SyntheticSpec",
    "ensure_synthetic",
    "generate_dataset",
    "generate_sample",
    "image_size",
    "mask_noise_fraction",
    "read_image",
    "read_mask",
    "scan_split",
    "split_counts",
    "write_sample",
]
