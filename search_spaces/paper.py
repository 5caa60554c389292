"""The papers' three-loss inversion (KL + CE + cosine, no orthogonality term) on MNIST."""


def space(trial) -> dict:
    # the three loss weights of arXiv 2411.17777, unitless; the papers give no values
    trial.suggest_float("inversion/alpha_kl", 1e-2, 10.0, log=True)
    trial.suggest_float("inversion/beta_ce", 1e-2, 10.0, log=True)
    trial.suggest_float("inversion/gamma_cosine", 1e-3, 1.0, log=True)
    trial.suggest_int("rounds/count", 1, 5)  # train -> invert -> exclude rounds
    return {
        "data/id": "mnist",
        "data/ood": ["fashionmnist", "cifar10", "tinyimagenet"],
        "inversion/delta_ortho": 0.0,  # the papers' loss has no orthogonality term
        "inversion/conditioning": "vector+matrix",
        "garbage/policy": "all",  # paper 2505.23448: every inverted image enters the garbage class
    }
