"""nbgrader configuration for the kdcourse class.

The course root is this folder. Assignment sources stay in ../notebooks/assignments (no copies);
release/, submitted/, staged/, autograded/, feedback/, export/ and gradebook.db are generated here and
never committed (see .gitignore). Every rule -- kernels in the sandbox, verdicts from the trusted judge,
timeouts, hidden tests and mark schemes kept out of feedback, restored test cells -- comes from
``kdcourse.grading.adapter.config.configure``, the same function the ``kdcourse`` instructor commands
use, so plain ``nbgrader`` commands behave the same.
"""

import os
import sys

c = get_config()  # noqa: F821  (provided by traitlets when nbgrader loads this file)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if REPO not in sys.path:  # the kdcourse package of this checkout, even when it is not installed
    sys.path.insert(0, REPO)

from kdcourse.grading.adapter.config import configure  # noqa: E402
from kdcourse.grading.course import Course  # noqa: E402

configure(c, Course.from_repo(REPO))
