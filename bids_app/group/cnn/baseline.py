"""A linear baseline for the 3D-CNN: PCA + L2 logistic regression on masked dFC maps.

``PCA(n_components=min(50, n_samples - 1, n_features), whiten=False)`` followed by
``LogisticRegression(C=1.0, max_iter=1000)`` (L2 penalty), both seeded. No feature
standardisation: the dFC maps are Fisher z values on a common scale. sklearn is imported
when the class is used, not at import time.
"""

from __future__ import annotations

import numpy as np

MAX_COMPONENTS = 50


class LogRegBaseline:
    """PCA + logistic regression classifier of windows (labels 0/1).

    Parameters
    ----------
    seed : int
        ``random_state`` of PCA and LogisticRegression.
    max_components : int
        Upper bound of the number of principal components (50).
    C : float
        Inverse L2 regularisation strength of the logistic regression.
    """

    def __init__(self, seed: int = 0, max_components: int = MAX_COMPONENTS, C: float = 1.0):
        if int(max_components) < 1:
            raise ValueError(f"max_components must be >= 1, got {max_components}")
        if not C > 0:
            raise ValueError(f"C must be > 0, got {C}")
        self.seed = int(seed)
        self.max_components = int(max_components)
        self.C = float(C)
        self.pipeline_ = None
        self.n_components_: int | None = None

    def fit(self, X, y) -> LogRegBaseline:
        """Fit on ``X`` (n_samples, n_features) with labels ``y`` in {0, 1}; returns self."""
        from sklearn.decomposition import PCA
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline

        X = np.asarray(X, dtype=np.float32)
        y = np.asarray(y)
        if X.ndim != 2:
            raise ValueError(f"X must be 2D (n_samples, n_features), got shape {X.shape}")
        if y.shape != (X.shape[0],):
            raise ValueError(f"y must have shape ({X.shape[0]},), got {y.shape}")
        if not np.isin(y, (0, 1)).all() or np.unique(y).size != 2:
            raise ValueError(f"y must contain both classes 0 and 1, got {np.unique(y)}")
        n_components = min(self.max_components, X.shape[0] - 1, X.shape[1])
        self.pipeline_ = Pipeline(
            [
                ("pca", PCA(n_components=n_components, whiten=False, random_state=self.seed)),
                (
                    "logreg",
                    LogisticRegression(C=self.C, max_iter=1000, random_state=self.seed),
                ),
            ]
        )
        self.pipeline_.fit(X, y.astype(int))
        self.n_components_ = n_components
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities ``(n_samples, 2)``: columns P(label 0), P(label 1)."""
        if self.pipeline_ is None:
            raise ValueError("LogRegBaseline is not fitted; call fit first")
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2:
            raise ValueError(f"X must be 2D (n_samples, n_features), got shape {X.shape}")
        proba = self.pipeline_.predict_proba(X).astype(float)  # float32 PCA: re-normalise
        return proba / proba.sum(axis=1, keepdims=True)

    def predict(self, X) -> np.ndarray:
        """Predicted labels (argmax of :meth:`predict_proba`)."""
        return self.predict_proba(X).argmax(axis=1)
