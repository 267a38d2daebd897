"""Feature extractors by name: one registry (``ganbench.core.registry.EXTRACTORS``), entries defined in this package.

``base``: what an extractor is (:class:`Extractor`, :class:`FeatureSource`, :func:`register_extractor`);
``inception``: torch-fidelity's InceptionV3 and its pinned weights (``inception-v3-compat``); ``domain``: a
small classifier per MNIST-like dataset, shipped with ganbench (``domain``); ``files``: what ``ganbench data
fetch``/``verify`` know by name (stored datasets and extractor weights). A new extractor is one
:func:`register_extractor` call in one module of this package.
"""

from ganbench.extractors.base import (Extractor, FeatureSource, extract_layers, feature_source,  # noqa: F401
                                      register_extractor)
from ganbench.extractors import inception, domain  # noqa: E402,F401  (register their extractors, in this order)
from ganbench.extractors.inception import (CONVERTED_NAME, FID_HELPER_CACHED, INCEPTION_RESIZE, OFFICIAL_NAME,  # noqa: E402,F401
                                           ensure_inception, inception_extractor, inception_source,
                                           inception_weights, verify_inception)
from ganbench.extractors.domain import domain_extractor_name, domain_source, register_domain_extractors  # noqa: E402,F401
from ganbench.extractors.files import data_names, fetch_named, verify_named  # noqa: E402,F401
