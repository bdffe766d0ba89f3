"""The language-model unit's commands.

* ``python -m kdcourse.lm teacher --out PATH``: train the teacher with its seeded recipe and save it;
* ``python -m kdcourse.lm compare [--seeds 5] [--steps 150]``: the unit's two experiments over seeds, as
  tables of mean ± sd (what each transfer set teaches; what the direction of the KL does to the text).
"""

from __future__ import annotations

import argparse
import time


def _teacher(out: str) -> None:
    from kdcourse.lm.teacher import TEACHER_RECIPE, make_teacher, save_teacher
    from kdcourse.lm.text import load_corpus, split_corpus
    from kdcourse.lm.training import evaluate_language_model

    started = time.perf_counter()
    model = make_teacher()
    path = save_teacher(model, out)
    scores = evaluate_language_model(model, split_corpus(load_corpus()).validation)
    print(f"teacher: {TEACHER_RECIPE}; validation cross-entropy {scores.cross_entropy:.4f} nats/char "
          f"(perplexity {scores.perplexity:.2f}); {time.perf_counter() - started:.0f} s; saved to {path}")


def _compare(seeds: int, steps: int) -> None:
    from kdcourse.lm.experiments import compare_directions, compare_transfer_sets, summarise
    from kdcourse.lm.teacher import load_teacher
    from kdcourse.lm.text import load_corpus, split_corpus
    from kdcourse.tables import format_table

    splits, teacher = split_corpus(load_corpus()), load_teacher()
    for title, experiment in (("What each transfer set teaches", compare_transfer_sets),
                              ("What the direction of the KL does to the text", compare_directions)):
        summary = summarise(experiment(teacher, splits, seeds=range(seeds), steps=steps))
        names = list(next(iter(summary.values())))
        rows = [[method, *(f"{mean:.3f} ± {sd:.3f}" for mean, sd in (scores[n] for n in names))]
                for method, scores in summary.items()]
        print(f"{title} ({seeds} seeds, {steps} steps; mean ± sd)")
        print(format_table(["method", *names], rows, align="l" + "r" * len(names)))
        print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kdcourse.lm", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    teacher = commands.add_parser("teacher", help="train the teacher (one CPU thread, about a minute) and save it")
    teacher.add_argument("--out", required=True, help="where to write the checkpoint (e.g. kdcourse/lm/teacher.pt)")
    compare = commands.add_parser("compare", help="the unit's experiments over seeds (mean ± sd tables)")
    compare.add_argument("--seeds", type=int, default=5)
    compare.add_argument("--steps", type=int, default=150)
    args = parser.parse_args(argv)
    if args.command == "teacher":
        _teacher(args.out)
    else:
        _compare(args.seeds, args.steps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
