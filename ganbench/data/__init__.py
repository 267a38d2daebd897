"""Datasets by name: one registry (``ganbench.core.registry.DATASETS``), entries defined in this package.

``base``: the entry types, the ``@dataset`` decorator for drawn datasets and loading a protocol's data;
``idx``: the stored IDX datasets (Fashion-MNIST, MNIST); ``synthetic``: 2D Gaussian mixtures and stacked
MNIST, drawn from a seed. A new dataset is one registered definition in one file (see ``synthetic.py``).
"""

from ganbench.data.base import (DATASETS, Dataset, DrawnDataset, ImageSet, StoredDataset, check_data_root,  # noqa: F401
                                dataset, dataset_classes, get_dataset, is_points,
                                load_data, load_split, register_dataset, resize_images)
from ganbench.data import idx, synthetic, translation  # noqa: E402,F401  (registers their datasets)
from ganbench.data.idx import IdxDataset, fetch, verify  # noqa: E402,F401
