"""Around the fashionmnist preset: the inversion priors, the generator body and which inverted
samples enter the garbage pool, and how many are offered per round (issue 14). Run on top of
the preset:

    python -m study.launch --preset fashionmnist --space inversion --name fashionmnist-inversion \
        --objective p_garbage:auroc --no-asha --num-samples 8 --max-concurrent 1 \
        --data-root ../shared/data

A probe (issue 14) found a BatchNorm-statistics prior (weight 10) plus total variation
(weight 1) turned per-class stripe textures into garment-like silhouettes and raised MNIST AUROC
over the no-inversion control; the ranges are centred there, on log scales.
"""


def space(trial) -> dict:
    # DeepInversion's feature regulariser: makes G's batches look like ID data to every BN layer
    trial.suggest_float("inversion/feature_stats", 1.0, 30.0, log=True)  # weight, unitless
    # the running statistics also average over garbage images; "id" matches ID images alone
    trial.suggest_categorical("inversion/feature_stats_target", ["running", "id"])
    trial.suggest_float("inversion/tv", 0.1, 10.0, log=True)  # l1 TV weight; smooth images
    trial.suggest_float("inversion/l2", 1e-3, 0.1, log=True)  # pixel l2 weight; dim images
    trial.suggest_float("inversion/diversity", 1e-3, 0.1, log=True)  # mode seeking: G uses z
    trial.suggest_categorical("inversion/arch", ["transposed", "upsample"])  # checkerboards
    # how many inverted images each round offers the pool: more cover more of the region near
    # the ID data, at the cost of generating and training on them (images, log scale)
    trial.suggest_int("inversion/samples_per_round", 1000, 8000, log=True)
    # which inversions enter the pool: uncertain ones, or the classifier's false positives
    policy = trial.suggest_categorical("garbage/policy", ["all", "uncertain", "confident", "mix"])
    if policy in ("uncertain", "mix"):
        trial.suggest_float("garbage/ue_threshold", 0.05, 0.5)  # UE in [0, 1]
    if policy in ("confident", "mix"):
        trial.suggest_float("garbage/confidence_threshold", 0.5, 0.99)  # top ID probability
    return {}  # the preset names the datasets
