"""Detection engine: small pure detectors and the per-key :class:`DetectorBank`.

Every detector is built from its settings, learns with ``learn_one`` and scores
with ``score_one`` (score before learn), pickles compactly, and returns ``None``
while warming up. One algorithm per module:

=====================  ==================================================
module                 detector
=====================  ==================================================
``zscore``             :class:`RobustZScore` — Huberised EWMA mean/variance
``quantile``           :class:`EWQuantiles` — bounded streaming quantile sketch
``iqr``                :class:`IQRFence` — Tukey fences
``mad``                :class:`MAD` — median absolute deviation
``percentile``         :class:`Percentile` — rolling percentile + margin
``cusum``              :class:`Cusum` — two-sided CUSUM (sustained shifts)
``ewma``               :class:`EwmaChart` — EWMA control chart
``error_rate``         :class:`ErrorRate` — binomial tail vs beta baseline
``traffic``            :class:`TrafficRate` — Poisson vs time-of-day rate
``window_shift``       :class:`WindowShift` — window means vs a size-aware baseline (latency, tokens/s, cost)
``drift``              :class:`TokenDrift` — PSI / KL of log2 token histograms
``joint``              :class:`LatencyGivenTokens` — latency given output tokens (multivariate)
``likelihood``         :class:`LikelihoodDetector` — anomaly likelihood (NAB), optional spike detector
``hst``                :class:`HSTOutlier` — river HalfSpaceTrees, sized small (optional)
``bank``               :class:`DetectorBank` — all of the above for one key
=====================  ==================================================
"""

from sentinel.detect.bank import METRICS, DetectorBank
from sentinel.detect.cusum import Cusum
from sentinel.detect.drift import TokenDrift
from sentinel.detect.error_rate import ErrorRate
from sentinel.detect.ewma import EwmaChart
from sentinel.detect.hst import HSTOutlier
from sentinel.detect.iqr import IQRFence
from sentinel.detect.joint import LatencyGivenTokens
from sentinel.detect.likelihood import LikelihoodDetector
from sentinel.detect.mad import MAD
from sentinel.detect.percentile import Percentile
from sentinel.detect.quantile import EWQuantiles
from sentinel.detect.settings import DetectionSettings
from sentinel.detect.traffic import TrafficRate
from sentinel.detect.zscore import RobustZScore

__all__ = [
    "MAD",
    "METRICS",
    "Cusum",
    "DetectionSettings",
    "DetectorBank",
    "EWQuantiles",
    "ErrorRate",
    "EwmaChart",
    "HSTOutlier",
    "IQRFence",
    "LatencyGivenTokens",
    "LikelihoodDetector",
    "Percentile",
    "RobustZScore",
    "TokenDrift",
    "TrafficRate",
]
