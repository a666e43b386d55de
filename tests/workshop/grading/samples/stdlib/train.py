"""'Training': the centroid of each class of a small built-in dataset, saved as JSON."""

import json
import sys

DATA = {
    "class_0": [[14.2, 1.7, 2.4], [13.2, 1.8, 2.1], [13.2, 2.4, 2.7]],
    "class_1": [[12.4, 0.9, 2.0], [12.3, 1.1, 1.8], [12.6, 1.3, 2.2]],
    "class_2": [[12.9, 3.9, 2.4], [13.0, 4.1, 2.5], [13.4, 3.8, 2.6]],
}
centroids = {
    label: [sum(column) / len(rows) for column in zip(*rows, strict=False)]
    for label, rows in DATA.items()
}
with open(sys.argv[1], "w") as handle:
    json.dump({"centroids": centroids}, handle)
