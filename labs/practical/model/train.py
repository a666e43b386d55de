"""Train the practical's model in the image's builder stage: scikit-learn stays there.

A standard scaler and a multinomial logistic regression on scikit-learn's wine dataset
(178 wines, 13 chemical measurements, 3 cultivars), exported as plain numbers (JSON) that
the service evaluates with NumPy alone.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def main(out: Path) -> int:
    data = load_wine()
    train_x, test_x, train_y, test_y = train_test_split(
        data.data, data.target, test_size=0.25, random_state=0, stratify=data.target
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(train_x, train_y)
    accuracy = float(model.score(test_x, test_y))
    scaler, classifier = model.named_steps.values()
    out.write_text(
        json.dumps(
            {
                "name": "wine-logistic-regression",
                "features": list(data.feature_names),
                "classes": [str(name) for name in data.target_names],
                "mean": scaler.mean_.tolist(),
                "scale": scaler.scale_.tolist(),
                "coef": classifier.coef_.tolist(),
                "intercept": classifier.intercept_.tolist(),
                "test_accuracy": accuracy,
            }
        )
    )
    print(f"trained: test accuracy {accuracy:.3f} -> {out}")
    return 0 if accuracy > 0.9 else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
