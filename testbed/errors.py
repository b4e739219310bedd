"""Errors the testbed raises. The CLI turns them into one clear message and an exit code."""


class TestbedError(Exception):
    """A failure a user can act on; its message says what went wrong and, where possible, how
    to fix it."""

    __test__ = False  # not a pytest test class, despite the name


class SpecError(TestbedError):
    """A spec file is invalid. Holds every problem found, each with file, line and field."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class NotRootError(TestbedError):
    pass


class WaitTimeout(TestbedError):
    pass
