"""nbgrader configuration for the kdcourse class.

The course root is this folder. Assignment sources stay in ../notebooks/assignments (no copies);
release/, submitted/, autograded/, feedback/ and gradebook.db are generated here and never committed.
"""

import os

c = get_config()  # noqa: F821  (provided by traitlets when nbgrader loads this file)

HERE = os.path.dirname(os.path.abspath(__file__))

c.CourseDirectory.course_id = "kdcourse"
c.CourseDirectory.root = HERE
c.CourseDirectory.source_directory = os.path.join("..", "notebooks", "assignments")
