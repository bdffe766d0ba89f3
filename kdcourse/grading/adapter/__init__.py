"""kdcourse's adapter to nbgrader: its configuration, its Python API, and the two preprocessors that
run student code in the sandbox (:mod:`.execute`) and reach every verdict outside it (:mod:`.judging`)."""
