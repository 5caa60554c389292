"""Tiny MNIST study for tests and smoke runs: a few trials finish in minutes on two CPU cores."""


def space(trial) -> dict:
    trial.suggest_float("inversion/alpha_kl", 0.1, 10.0, log=True)  # loss weight, unitless
    trial.suggest_float("inversion/gamma_cosine", 1e-3, 1.0, log=True)  # loss weight, unitless
    trial.suggest_int("inversion/steps", 20, 40)  # generator steps per round
    policy = trial.suggest_categorical("garbage/policy", ["all", "uncertain"])
    if policy == "uncertain":
        trial.suggest_float("garbage/ue_threshold", 0.05, 0.5)  # UE in [0, 1]
    trial.suggest_int("rounds/count", 1, 2)
    return {
        "data/id": "mnist",
        "data/ood": ["fashionmnist", "cifar10"],
        "data/train_limit": 3000,  # ID train images
        "data/test_limit": 1000,  # ID test images and each OOD set before its val/test split
        "data/id_val_size": 500,
        "classifier/width": 16,
        "classifier/batch_size": 32,  # ~100 steps per epoch on 3000 images
        "classifier/epochs": 3,  # ~90% ID accuracy by round 2 (width 8, 1 epoch: ~30%)
        "inversion/width": 8,
        "inversion/batch_size": 32,
        "inversion/samples_per_round": 300,
        "garbage/noise_count": 300,
        # models this small run no faster in bf16 (docs/benchmarks.md: 9% slower on an AMD
        # Zen 5, 12% on Zen 4, the same speed with AMX), so the smoke space stays fp32
        "rounds/amp": False,
    }
