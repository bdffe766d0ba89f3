"""A simulated class: the solution, the blank release, one student per declared misconception, and bad
or hostile submissions, each with what grading must give it (``kdcourse verify`` and ``kdcourse demo``)."""
