"""``w2s verify [--dataset D] [--idea I] [--json]``: rescore kept predictions and report every seed
whose stored accuracy does not match (exit 1 when any does, or a referee claim has no predictions)."""

from __future__ import annotations

import argparse
import json

BAD = ("mismatch", "no predictions", "unscorable")


def register(sub: argparse._SubParsersAction) -> None:
    verify = sub.add_parser(
        "verify",
        help="rescore the kept predictions of referee-scored seeds and report any that do not match",
        description="Rescores predictions_seed_<s>.json.gz through the referee's scoring and compares "
                    "the stored public/private accuracy. Imported results have nothing to rescore.",
    )
    verify.add_argument("--dataset", default=None, help="only this dataset")
    verify.add_argument("--idea", default=None, help="only this idea")
    verify.add_argument("--json", action="store_true", help="print every check as JSON")
    verify.set_defaults(func=_verify)


def _verify(args: argparse.Namespace, unknown: list[str]) -> int:
    from core.app.verify import verify_results

    checks = verify_results(dataset=args.dataset, idea=args.idea)
    bad = [c for c in checks if c.status in BAD]
    if args.json:
        print(json.dumps([c.to_dict() for c in checks], indent=2))
        return 1 if bad else 0
    for c in bad:
        print(f"{c.status}: {c.dataset}_{c.idea}/{c.key}/seed_{c.seed}.json ({c.source}): {c.detail}")
    counts = {status: sum(c.status == status for c in checks) for status in ("ok", *BAD, "skipped")}
    print("verified " + ", ".join(f"{n} {status}" for status, n in counts.items()) +
          " (skipped: not referee-scored, e.g. imported)")
    return 1 if bad else 0
