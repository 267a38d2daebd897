"""Training-health diagnostics: per-step records + sample statistics -> findings.

- :mod:`~ganbench.diagnosis.findings`: Finding, Trace, Diagnosis, the remedies, JSON and text report;
- :mod:`~ganbench.diagnosis.thresholds`: the one table of thresholds, each with its calibration;
- :mod:`~ganbench.diagnosis.detectors`: the registered detectors and :func:`diagnose`;
- :mod:`~ganbench.diagnosis.probes`: sample statistics (diversity, class entropy, modes covered);
- :mod:`~ganbench.diagnosis.monitor`: the live monitor the trainer calls at each check;
- :mod:`~ganbench.diagnosis.tracked`: a tracked run's diagnosis, logged at its end and re-read from MLflow.
"""

from ganbench.diagnosis.detectors import DETECTORS, Detector, detector, diagnose, rolling, spans
from ganbench.diagnosis.findings import (REMEDIES, SEVERITIES, Diagnosis, Finding, Trace, format_report,
                                        write_diagnosis)
from ganbench.diagnosis.monitor import PROBE_SAMPLES, SAMPLE_STATS_FILE, ProbeMonitor, health_monitor
from ganbench.diagnosis.probes import (FeatureSpace, class_entropy, feature_space, has_domain_classifier,
                                      mean_pairwise_distance, mode_counter, pixel_space, sample_statistics)
from ganbench.diagnosis.thresholds import THRESHOLDS, Thresholds, thresholds_from
from ganbench.diagnosis.tracked import DIAGNOSIS_FILE, TIMELINE_FILE, diagnose_run, record_health

__all__ = [
    "DETECTORS", "DIAGNOSIS_FILE", "PROBE_SAMPLES", "REMEDIES", "SAMPLE_STATS_FILE", "SEVERITIES", "THRESHOLDS",
    "TIMELINE_FILE", "Detector", "Diagnosis", "FeatureSpace", "Finding", "ProbeMonitor", "Thresholds", "Trace",
    "class_entropy", "detector", "diagnose", "diagnose_run", "feature_space", "format_report",
    "has_domain_classifier", "health_monitor", "mean_pairwise_distance", "mode_counter", "pixel_space",
    "record_health", "rolling", "sample_statistics", "spans", "thresholds_from", "write_diagnosis",
]
