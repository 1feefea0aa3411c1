"""Old import path of the sequence-level (:mod:`passk.core.losses.sequence`) and
covariance (:mod:`passk.core.losses.covariance`) policy losses."""

from passk.core.losses.covariance import (
    COV_SELECT,
    ClipCovParams,
    KLCovParams,
    clip_cov_loss,
    kl_cov_loss,
)
from passk.core.losses.sequence import (
    CISPOParams,
    GSPOParams,
    SAPOParams,
    cispo_loss,
    gspo_loss,
    sapo_loss,
)

__all__ = [
    "COV_SELECT",
    "CISPOParams",
    "ClipCovParams",
    "GSPOParams",
    "KLCovParams",
    "SAPOParams",
    "cispo_loss",
    "clip_cov_loss",
    "gspo_loss",
    "kl_cov_loss",
    "sapo_loss",
]
