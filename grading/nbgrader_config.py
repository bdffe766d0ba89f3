"""nbgrader configuration for the kdcourse class.

The course root is this folder. Assignment sources stay in ../notebooks/assignments (no copies);
release/, submitted/, staged/, autograded/, feedback/, export/ and gradebook.db are generated here and
never committed (see .gitignore). The grading rules (timeouts, hidden tests kept out of feedback,
restored test cells, stderr that does not cost points) come from ``kdcourse.grading.config.harden``, the
same function the ``kdcourse`` instructor commands use, so plain ``nbgrader`` commands behave the same.
"""

import os
import sys

c = get_config()  # noqa: F821  (provided by traitlets when nbgrader loads this file)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
if REPO not in sys.path:  # the kdcourse package of this checkout, even when it is not installed
    sys.path.insert(0, REPO)

from kdcourse.grading.config import harden  # noqa: E402
from kdcourse.grading.workers import kernel_environment  # noqa: E402

c.CourseDirectory.course_id = "kdcourse"
c.CourseDirectory.root = HERE
# relative to the root: nbgrader joins it onto CourseDirectory.root (checked by the grading tests)
c.CourseDirectory.source_directory = os.path.join("..", "notebooks", "assignments")
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(HERE, "gradebook.db")
harden(c)

# kernels started by nbgrader inherit this environment: one BLAS/torch thread each, no progress bars
for _name, _value in kernel_environment().items():
    os.environ.setdefault(_name, _value)
