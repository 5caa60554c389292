"""OpenOOD's postprocessor contract, as its evaluator uses it (OpenOOD is not on PyPI, so it
cannot be installed here; this follows openood/evaluation_api/evaluator.py and
openood/evaluators/metrics.py of OpenOOD v1.5).

The evaluator calls ``postprocessor.setup(net, id_loader_dict, ood_loader_dict)`` once, then
``postprocessor.inference(net, loader)`` for the ID test loader and each OOD loader; OOD labels
are replaced by -1, and AUROC / FPR@95TPR take OOD as the positive class with ``-conf`` as the
OOD score (a higher ``conf`` means more ID).
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics


def openood_metrics(postprocessor, net, id_loader, ood_loader) -> dict[str, float]:
    """What OpenOOD's evaluator computes for one OOD set: auroc, fpr95 (OOD positive), acc."""
    postprocessor.setup(net, {"test": id_loader}, {"test": ood_loader})
    id_pred, id_conf, id_gt = postprocessor.inference(net, id_loader)
    ood_pred, ood_conf, ood_gt = postprocessor.inference(net, ood_loader)
    ood_gt = -1 * np.ones_like(ood_gt)
    conf = np.concatenate([id_conf, ood_conf])
    label = np.concatenate([id_gt, ood_gt])
    ood_indicator = (label == -1).astype(int)
    fpr_list, tpr_list, _ = metrics.roc_curve(ood_indicator, -conf)
    return {
        "auroc": float(metrics.auc(fpr_list, tpr_list)),
        "fpr95": float(fpr_list[np.argmax(tpr_list >= 0.95)]),
        "acc": float((id_pred == id_gt).mean()),
    }
