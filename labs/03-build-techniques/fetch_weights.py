"""Fetch the model's weights from the team's private model index (at build time).

The index wants a token. In class the "index" is simulated: any non-empty token is
accepted and the weights are made here, but the token is handled as a real one would
be: read from a file (a BuildKit secret mount, /run/secrets/index_token) or, as the
starter does, from $INDEX_TOKEN, and never printed.

    python fetch_weights.py OUT.json [TOKEN_FILE]
"""

import json
import os
import random
import sys


def token() -> str:
    path = sys.argv[2] if len(sys.argv) > 2 else "/run/secrets/index_token"
    if os.path.exists(path):
        with open(path) as handle:
            return handle.read().strip()
    return os.environ.get("INDEX_TOKEN", "").strip()


def main() -> int:
    secret = token()
    if not secret:
        print(
            "fetch_weights: no index token: build with --secret id=index_token,src=FILE "
            "(and RUN --mount=type=secret,id=index_token)",
            file=sys.stderr,
        )
        return 1
    rng = random.Random(2026)  # noqa: S311 (the "published" weights: the same for everyone)
    weights = {"coef": [round(rng.uniform(-1, 1), 4) for _ in range(8)], "intercept": 0.5}
    with open(sys.argv[1], "w") as handle:
        json.dump(weights, handle)
    print(f"fetch_weights: {len(weights['coef'])} weights (token of {len(secret)} characters)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
